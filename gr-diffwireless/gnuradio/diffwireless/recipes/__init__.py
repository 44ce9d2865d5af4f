"""Data synthesis with GNU Radio's blocks and the training recipes that need it, registered with ``dw-train``."""

from diffwireless.training import register_model

# Trained on frames from GNU Radio's modulators.
register_model("modclass_resnet", "gnuradio.diffwireless.recipes.classifier:train")
register_model("modaug_unet", "gnuradio.diffwireless.recipes.augmenter:train")
# Trained on bursts over the spans real transmitters use, through the capture front end; says "unknown".
register_model("modclass_radio", "gnuradio.diffwireless.recipes.radio_classifier:train")
