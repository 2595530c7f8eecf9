"""SS2D (VMamba's 2-D selective scan, arXiv 2401.10166; Mamba YOLO, arXiv 2406.05835; LaMamba-Diff, arXiv
2408.02615): four-direction cross-scan, a selective scan per direction, cross-merge."""

from attnzoo.ops.ss2d.cross import cross_merge, cross_scan
from attnzoo.ops.ss2d.functional import selective_scan_2d

__all__ = ["cross_merge", "cross_scan", "selective_scan_2d"]
