"""The RDT model: transformer, policy, encoders, weights and the inputs they take."""
