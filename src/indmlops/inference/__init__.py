"""The reference edge inference service: telemetry in over MQTT and HTTP, predictions out."""
