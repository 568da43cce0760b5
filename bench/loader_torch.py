"""PyTorch's side of bench/loader.sh: a DataLoader over the same `path label` list with the
papers' ImageNet-LT training transform (Kang et al.'s and Balanced Softmax's loaders):
RandomResizedCrop(224) + RandomHorizontalFlip + ColorJitter(0.4, 0.4, 0.4, 0) + ToTensor +
Normalize, on PIL images, shuffled, `num_workers` worker processes, batches of 64 consumed by a
step that only drops them. The first batch (worker start, cold caches) is not timed, as on
cauda's side. Prints one JSON line: images/s, workers, peak resident memory of this process and
its workers.

Usage: python loader_torch.py ROOT LIST [--workers N] [--batch 64] [--epochs 1]
"""

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class ListDataset(Dataset):
    def __init__(self, root: Path, list_file: Path, transform):
        self.root = root
        self.items = []
        for line in list_file.read_text().splitlines():
            if line.strip():
                path, label = line.rsplit(maxsplit=1)
                self.items.append((path, int(label)))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        with open(self.root / path, "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.transform(img), label


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("list")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tf = T.Compose(
        [
            T.RandomResizedCrop(224),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.4, 0.4, 0.4, 0),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    root = Path(a.root)
    ds = ListDataset(root, root / a.list, tf)
    loader = DataLoader(
        ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=False
    )
    images, seconds = 0, 0.0
    for epoch in range(a.epochs):
        torch.manual_seed(epoch)
        started = None
        for x, y in loader:
            if started is None:
                started = time.perf_counter()
            else:
                images += x.shape[0]
        seconds += time.perf_counter() - started
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "side": "pytorch",
                "images": images,
                "seconds": round(seconds, 3),
                "images_per_sec": round(images / max(seconds, 1e-9), 1),
                "threads": a.workers,
                "batch": a.batch,
                "peak_rss_mb": round(self_mb),
                "worker_peak_rss_mb": round(child_mb),
            }
        )
    )


if __name__ == "__main__":
    main()
