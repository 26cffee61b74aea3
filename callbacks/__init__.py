"""Lightning callbacks for speakimg runs (sampling during training, vocoder media)."""
