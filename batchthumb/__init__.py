"""batchthumb: set Huawei Cloud CodeArts Req plan thumbnails in bulk."""

__version__ = "0.1.0"
