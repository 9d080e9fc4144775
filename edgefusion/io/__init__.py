"""Image files, paired datasets and color conversion (numpy + Pillow only)."""
