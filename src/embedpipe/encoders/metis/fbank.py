"""Kaldi-style log-mel filter banks for a padded batch, on the GPU: w2v-bert-2.0's input features.

The same computation as `SeamlessM4TFeatureExtractor` (which loops over frames in numpy, ~15 ms per
5-s clip on one core, the bottleneck of a 16-CPU GPU node): 25 ms Povey-windowed frames every 10 ms
on 16-bit-scaled samples, DC offset removed, pre-emphasis 0.97, |FFT(512)|², the extractor's own
80 mel filters, log with a floor, per-utterance mean/variance normalisation per mel bin, then pairs
of frames stacked (160-d at 50 Hz) with the extractor's attention mask. Frames and FFT run in float64
as numpy does, so the two agree to float32 rounding (tests/workflow/test_audio.py holds the tolerance).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from embedpipe.encoders.metis.sizes import FRAME, HOP, STRIDE
from embedpipe.encoders.pooling import length_mask, masked_mean

FFT = 512
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07


class KaldiFbank(nn.Module):
    def __init__(self, window: np.ndarray, mel_filters: np.ndarray, padding_value: float = 0.0) -> None:
        super().__init__()
        # What the extractor puts in the second half of an odd file's last stacked pair (w2v-bert-2.0's
        # preprocessor_config says 1.0): the model sees that frame, so its latent depends on it.
        self.padding_value = float(padding_value)
        if window.shape != (FRAME,) or mel_filters.shape[0] != FFT // 2 + 1:
            raise ValueError(f"unexpected feature extractor: window {window.shape}, mel filters {mel_filters.shape}")
        self.register_buffer("window", torch.as_tensor(window, dtype=torch.float64), persistent=False)
        self.register_buffer("mel", torch.as_tensor(mel_filters, dtype=torch.float64), persistent=False)

    @classmethod
    def like(cls, extractor) -> KaldiFbank:
        if extractor.stride != STRIDE or extractor.sampling_rate != 16000:
            raise ValueError(f"feature extractor with stride {extractor.stride} at {extractor.sampling_rate} Hz")
        return cls(np.asarray(extractor.window), np.asarray(extractor.mel_filters), extractor.padding_value)

    def forward(self, wave: torch.Tensor, n_samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """wave `[B, N]` float (zero-padded), n_samples `[B]` →
        (features `[B, T, 160]` float32, the extractor's attention mask `[B, T]`, output lengths `[B]`)."""
        x = wave.to(torch.float64) * 32768.0
        if x.shape[1] < FRAME:
            x = nn.functional.pad(x, (0, FRAME - x.shape[1]))
        frames = x.unfold(1, FRAME, HOP)  # [B, F, 400]
        frames = frames - frames.mean(dim=2, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1 - PREEMPHASIS), frames[..., 1:] - PREEMPHASIS * frames[..., :-1]], 2)
        power = torch.fft.rfft(frames * self.window, n=FFT).abs().square()  # [B, F, 257]
        logmel = torch.log(torch.clamp(power @ self.mel, min=MEL_FLOOR))  # [B, F, 80]

        n_frames = torch.div(n_samples - FRAME, HOP, rounding_mode="floor") + 1
        n_frames = torch.where(n_samples < FRAME, torch.zeros_like(n_frames), n_frames)
        valid = length_mask(n_frames, logmel.shape[1]).unsqueeze(-1).to(logmel.dtype)  # [B, F, 1]
        count = n_frames.to(logmel.dtype)[:, None, None]
        mean = masked_mean(logmel, n_frames, keepdim=True)
        var = (((logmel - mean) * valid) ** 2).sum(1, keepdim=True) / (count - 1)  # ddof=1, as the extractor
        feats = ((logmel - mean) / torch.sqrt(var + 1e-7) * valid).to(torch.float32)

        if feats.shape[1] % STRIDE:
            feats = nn.functional.pad(feats, (0, 0, 0, 1))
        odd_tail = (torch.arange(feats.shape[1], device=feats.device)[None, :] == n_frames[:, None]) & (
            n_frames[:, None] % STRIDE == 1)
        feats = feats.masked_fill(odd_tail.unsqueeze(-1), self.padding_value)
        b, f, c = feats.shape
        stacked = feats.reshape(b, f // STRIDE, c * STRIDE)
        second_of_pair = torch.arange(1, f, STRIDE, device=feats.device)
        mask = (second_of_pair[None, :] < n_frames[:, None]).to(torch.long)
        return stacked, mask, torch.div(n_frames + STRIDE - 1, STRIDE, rounding_mode="floor")
