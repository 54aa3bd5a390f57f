"""What happens to a batch after a receiver has decoded it: consumers, and the fan-out between them.

The receivers call one consumer per signal. Behind it the store decides the acknowledgement, and
taps (metrics, forwarding) get the same batches without being able to delay or change it.
"""
