"""Detection operations that compile under jit with fixed shapes, each equal to torchvision's.

Boxes are ``xyxy`` float pixels unless a function says otherwise; padded rows are masked, never
dropped; RoI features are channels-last (NHWC).

- :mod:`~cnn_jax.ops.boxes`: formats, areas, IoU / GIoU (Rezatofighi et al. 2019) / DIoU and
  CIoU (Zheng et al. 2020) and their losses, clipping, small-box masks;
- :mod:`~cnn_jax.ops.nms`: greedy non-maximum suppression, per category too;
- :mod:`~cnn_jax.ops.roi`: RoI pooling (Girshick 2015), RoIAlign (He et al. 2017) and its
  feature-pyramid form (Lin et al. 2017);
- :mod:`~cnn_jax.ops.anchors`: anchor boxes (Ren et al. 2015);
- :mod:`~cnn_jax.ops.box_coder`: box regression targets and the smooth L1 loss (Girshick 2015,
  Ren et al. 2015);
- :mod:`~cnn_jax.ops.matcher`: ground-truth assignment and balanced sampling (Ren et al. 2015);
- :mod:`~cnn_jax.ops.masks`: one binary mask per box row from an instance map.
"""

from cnn_jax.ops.anchors import AnchorGenerator, cell_anchors, grid_anchors
from cnn_jax.ops.box_coder import BBOX_XFORM_CLIP, decode, encode, l1_loss, smooth_l1_loss
from cnn_jax.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    complete_box_iou,
    complete_box_iou_loss,
    distance_box_iou,
    distance_box_iou_loss,
    generalized_box_iou,
    generalized_box_iou_loss,
    remove_small_boxes,
)
from cnn_jax.ops.masks import instance_masks
from cnn_jax.ops.matcher import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, match, sample_balanced
from cnn_jax.ops.nms import batched_nms, nms
from cnn_jax.ops.roi import (
    boxes_to_rois,
    fpn_levels,
    infer_scale,
    multiscale_roi_align,
    roi_align,
    roi_pool,
)

__all__ = [
    "AnchorGenerator",
    "BBOX_XFORM_CLIP",
    "BELOW_LOW_THRESHOLD",
    "BETWEEN_THRESHOLDS",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "boxes_to_rois",
    "cell_anchors",
    "clip_boxes_to_image",
    "complete_box_iou",
    "complete_box_iou_loss",
    "decode",
    "distance_box_iou",
    "distance_box_iou_loss",
    "encode",
    "fpn_levels",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "grid_anchors",
    "infer_scale",
    "instance_masks",
    "l1_loss",
    "match",
    "multiscale_roi_align",
    "nms",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "sample_balanced",
    "smooth_l1_loss",
]
