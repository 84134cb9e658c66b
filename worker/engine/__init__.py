"""The worker's container engine: lifecycle, logs and restart supervision on the native runtime."""
