"""The live demo's logic (the Streamlit page only lays it out): checking a user's input, turning it
into a batch of one exactly like the dataset does, running the cascade on it and timing it.

    img = decode_image(uploaded_bytes)          # PIL image, or UserError with a clear message
    text = prepare_text(typed, tokenizer, 64)   # TextInput (truncation notice), or UserError
    x = to_batch(img_or_text, data, collate, device)
    result = run_single(cascade, x, class_names)
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import UserError
from engine.runtime.cascade import Cascade
from engine.runtime.checkpoint import path_of
from engine.runtime.device import to_device
from engine.runtime.latency import time_parts

MAX_UPLOAD_BYTES = 20 * 2**20  # 20 MB
MAX_PIXELS = 40_000_000  # 40 megapixels
IMAGE_FORMATS = ("PNG", "JPEG", "MPO")  # MPO: multi-picture JPEGs from phone cameras
MAX_TEXT_CHARS = 5000  # longer pastes are cut before tokenising (the model reads ~64 tokens anyway)


# ----------------------------------------------------------------------------- inputs


def decode_image(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Uploaded bytes -> a fully decoded PIL image (EXIF rotation applied), or a UserError.

    Refuses: empty, too large (bytes, or pixels read from the header before decoding),
    not an image, not PNG/JPEG, corrupt or truncated. 16-bit and float grayscale are scaled
    to 8 bits (not clipped), so the dataset's conversion sees an ordinary 'L' image.
    """
    if not data:
        raise UserError("the uploaded file is empty")
    if len(data) > max_bytes:
        raise UserError(f"the file is {len(data):,} bytes; the demo accepts images up to {max_bytes:,} bytes "
                        f"({max_bytes / 2**20:.0f} MB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            if fmt not in IMAGE_FORMATS:
                raise UserError(f"this is a {fmt or 'an unknown'} image; upload a PNG or JPEG")
            w, h = img.size
            if w * h > max_pixels:
                raise UserError(f"the image is {w} x {h} = {w * h / 1e6:.0f} megapixels; the demo accepts up to "
                                f"{max_pixels / 1e6:.0f} megapixels (shrink it first)")
            if w < 1 or h < 1:
                raise UserError("the image has no pixels")
            img.load()
            img = ImageOps.exif_transpose(img)
    except UserError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UserError(f"the file is not a readable PNG or JPEG image ({err.__class__.__name__})") from err
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:  # truncated / corrupt data
        raise UserError(f"the image could not be decoded; the file looks corrupt or truncated ({err})") from err
    return _to_8bit(img)


def _to_8bit(img: Image.Image) -> Image.Image:
    """'I;16' / 'I' / 'F' images -> 'L' scaled by their range (PIL's convert would clip at 255)."""
    if img.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
        return img
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
    if img.mode == "F" and top <= 1.0:
        top = 1.0
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


@dataclass
class TextInput:
    text: str  # what the model is given (the collate truncates to max_tokens word pieces)
    n_tokens: int  # word pieces incl. [CLS]/[SEP], before truncation (of the possibly cut text)
    truncated: bool
    kept_text: str  # the part the model actually reads
    notice: str | None


def prepare_text(text: str, tokenizer, max_tokens: int, max_chars: int = MAX_TEXT_CHARS) -> TextInput:
    """A typed sentence -> TextInput; empty -> UserError; too long -> truncated with a notice."""
    if not isinstance(text, str):
        raise UserError("type a sentence")
    text = text.strip()
    if not text:
        raise UserError("the sentence is empty: type something to classify")
    notes = []
    if len(text) > max_chars:
        text = text[:max_chars]
        notes.append(f"only the first {max_chars:,} characters were kept")
    ids = tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
    truncated = len(ids) > max_tokens
    kept = text
    if truncated:
        body = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_tokens)["input_ids"]
        kept = tokenizer.decode(body, skip_special_tokens=True)
        notes.append(f"the sentence is {len(ids)} tokens long; the model reads only the first {max_tokens} "
                     f"(incl. [CLS] and [SEP]), so it was truncated")
    return TextInput(text, len(ids), truncated, kept, "; ".join(notes) or None)


def to_batch(raw, data, collate, device):
    """A PIL image or a str -> a collated batch of one on the device, converted like the dataset."""
    if data.kind == "image":
        if not isinstance(raw, Image.Image):
            raise UserError("this run classifies images; give it an image")
        x = data.preprocess(raw).unsqueeze(0)
    else:
        if not isinstance(raw, str) or not raw.strip():
            raise UserError("this run classifies sentences; give it a non-empty sentence")
        x, _ = collate([(data.preprocess(raw), 0)])
    return to_device(x, torch.device(device))


# ----------------------------------------------------------------------------- running


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """(C,) probabilities in float64 (the confidence used for the exit is their max)."""
    return torch.softmax(logits.detach().double().cpu(), dim=-1).numpy()


def time_paths(cascade: Cascade, x, repeats: int = 5) -> dict:
    """Median ms of the cascade on x (the path it takes) and of the full MainNet, interleaved."""
    ms = time_parts({"path": cascade, "full": cascade.full}, [x], cascade.device, repeats, warmup=1)
    out = {f"{name}_ms": float(np.median(v)) for name, v in ms.items()}
    out["speedup"] = out["full_ms"] / out["path_ms"] if out["path_ms"] > 0 else float("nan")
    return out


def run_single(cascade: Cascade, x, class_names: list[str], timing: bool = True, repeats: int = 5) -> dict:
    """The cascade on one input: SideNet probabilities and confidence, exit decision, answer,
    which head gave it, the MainNet's answer when it was computed (deferred), and timings."""
    out = cascade(x)
    probs = probabilities(out.side_logits[0])
    exited = bool(out.exited[0])
    pred = int(out.pred[0])
    result = {
        "theta": cascade.theta, "side_probs": probs, "side_conf": float(out.side_conf[0]),
        "side_pred": int(probs.argmax()), "side_answer": class_names[int(probs.argmax())],
        "exited": exited, "head": "SideNet" if exited else "MainNet", "pred": pred, "answer": class_names[pred],
        "attach": cascade.attach_name, "main": None,
    }
    if not exited:  # the MainNet already answered: show it
        result["main"] = _main_result(out.logits[0], class_names)
    if timing:
        result.update(time_paths(cascade, x, repeats))
    return result


def _main_result(logits: torch.Tensor, class_names: list[str]) -> dict:
    probs = probabilities(logits)
    pred = int(probs.argmax())
    return {"probs": probs, "pred": pred, "answer": class_names[pred], "conf": float(probs[pred])}


def main_answer(cascade: Cascade, x, class_names: list[str]) -> dict:
    """The full MainNet's answer (on request, for an input that exited)."""
    return _main_result(cascade.full(x)[0], class_names)


def slider_default(auto: dict | None, step: float = 0.001, fallback: float = 0.9) -> float:
    """The theta slider's starting value: the auto theta rounded DOWN to the slider's step (so it
    exits at least what auto exits), or `fallback` when there is no validation curve."""
    if not auto:
        return fallback
    return min(1.0, round(float(np.floor(auto["theta"] / step + 1e-9) * step), 9))


def gallery(data, start: int = 0, count: int = 12) -> list[tuple[int, object, str]]:
    """[(test index, raw input (PIL image or sentence), true label name)] for a page of the gallery."""
    n = len(data.test)
    labels = data.test.labels
    return [(i, data.raw_test(i), data.class_names[int(labels[i])]) for i in range(start, min(start + count, n))]


def model_view(x: torch.Tensor, data) -> Image.Image:
    """What the model sees of an image batch of one: its (3, S, S) tensor, un-normalised, as RGB."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in data.normalize)
    img = (x[0].detach().float().cpu() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(img.permute(1, 2, 0).numpy(), "RGB")


def run_label(run: dict, store) -> str:
    """How the demo names a run in its picker."""
    ckpt = path_of(store, run.get("checkpoint"))
    missing = "" if ckpt and ckpt.exists() else "  (no checkpoint)"
    attach = ",".join(run.get("attach") or []) or "no SideNet"
    return f"{run['model']} on {run['dataset']} @ {attach} · {run['run_id']}{missing}"


def checkpoint_problem(run: dict, store) -> str | None:
    """A message when the demo cannot load this run, else None."""
    if not run.get("attach"):
        return f"run {run['run_id']} is MainNet-only (no SideNet): there is no early exit to demonstrate."
    ckpt = run.get("checkpoint")
    if not ckpt:
        return f"run {run['run_id']} has no checkpoint recorded, so its model cannot be loaded. Retrain it."
    if not path_of(store, ckpt).exists():
        return (f"the checkpoint of run {run['run_id']} is missing ({ckpt}); its cached results still show in "
                "the explorer, but the live demo needs the weights. Retrain the run or restore the file.")
    return None
