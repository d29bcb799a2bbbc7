"""What loading a pipeline needs from this environment, applied before ``from_pretrained``.

One shim today: **Qwen2-VL processors where torchvision is missing.** The Qwen-Image edit
pipelines hold a ``transformers.Qwen2VLProcessor`` (image processor, tokenizer and video
processor). transformers 5 has no video processor without torchvision, and it cannot even
build the processor with ``video_processor=None``: its class check looks the video class
up and fails (``VIDEO_PROCESSOR_MAPPING has no attribute '_extra_content'``). So without
torchvision ``QwenImageEditPipeline.from_pretrained(...)`` fails for every checkpoint, and
no Qwen2VLProcessor can be built at all. torchvision is a separate install that must match
torch exactly, and CPU hosts and CI often lack it; the pipelines never pass videos.

A processor loads the sub-processors its ``__init__`` names, so an ``__init__`` without
``video_processor`` loads the image processor, tokenizer and chat template from the same
files and skips the video processor. ``prepare_loading`` gives ``Qwen2VLProcessor`` that
``__init__``, in place, only where torchvision is missing: there the original could never
be built, so nothing that worked changes, and the class stays the one model_index.json
names. With torchvision installed it does nothing.
"""

from __future__ import annotations


def prepare_loading(kind: str) -> None:
    """Patch what loading a pipeline of ``kind`` needs here; call before ``from_pretrained``.

    Idempotent and the same for every kind: it only turns loads that would fail into
    loads that work (see the module docstring), so it does not look at ``kind``.
    """
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        drop_video_processor()


def drop_video_processor() -> None:
    """Give ``transformers.Qwen2VLProcessor`` an ``__init__`` without ``video_processor``."""
    from transformers import Qwen2VLProcessor

    original = Qwen2VLProcessor.__init__
    if getattr(original, "drops_video_processor", False):
        return

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        original(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    __init__.drops_video_processor = True
    Qwen2VLProcessor.__init__ = __init__
