"""The local target's machinery: real services as supervised processes on 127.0.0.1."""
