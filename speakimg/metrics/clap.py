"""CLAP score of generated audio against its sound prompt (the Images that Sound protocol, optional).

Audio is resampled to 48 kHz and peak-normalised, trimmed to the model's 10 s window (so the score
is deterministic), and the score is ``100 * max(cos(audio, text), 0)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from speakimg.audio import peak_normalize, resample

__all__ = ["CLAPScore"]


class CLAPScore(nn.Module):
    """Per-clip CLAP scores (0-100) of 16 kHz audio against text prompts.

    Args:
        model_name_or_path: CLAP hub id or local folder (``laion/clap-htsat-unfused`` in ITS).
        sample_rate: sample rate of the audio given to :meth:`forward`.
    """

    def __init__(self, model_name_or_path: str = "laion/clap-htsat-unfused", sample_rate: int = 16000) -> None:
        super().__init__()
        from transformers import ClapModel, ClapProcessor

        from speakimg.loading import resolve_model

        folder = resolve_model(model_name_or_path, [""])  # a hub id: its config/processor files and one weights file
        self.model = ClapModel.from_pretrained(folder).eval()
        self.processor = ClapProcessor.from_pretrained(folder)
        self.sample_rate = sample_rate

    @staticmethod
    def _tensor(output) -> torch.Tensor:
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    @torch.no_grad()
    def forward(self, audios: list[np.ndarray | torch.Tensor], prompts: list[str] | str) -> torch.Tensor:
        prompts = [prompts] * len(audios) if isinstance(prompts, str) else list(prompts)
        if len(prompts) != len(audios):
            raise ValueError(f"got {len(audios)} audio clips but {len(prompts)} prompts")
        extractor = self.processor.feature_extractor
        clips = []
        for i, audio in enumerate(audios):
            x = audio.detach().float().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
            x = resample(np.squeeze(x).astype(np.float32), self.sample_rate, extractor.sampling_rate)
            clips.append(peak_normalize(x, 1.0, name=f"audio #{i}")[: extractor.nb_max_samples])
        device = next(self.model.parameters()).device
        inputs = self.processor(
            text=prompts, audio=clips, sampling_rate=extractor.sampling_rate, return_tensors="pt", padding=True
        ).to(device)
        audio_emb = self._tensor(self.model.get_audio_features(input_features=inputs["input_features"]))
        text_emb = self._tensor(
            self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        )
        cos = torch.nn.functional.cosine_similarity(audio_emb, text_emb, dim=-1)
        return (100 * cos.clamp_min(0)).float().cpu()
