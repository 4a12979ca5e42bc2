"""NATS JetStream between the stores and the cloud: the bridge (edge events in, exactly once), the streams and
consumers, and cloud messages out to stores."""
