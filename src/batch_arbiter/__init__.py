"""batch-arbiter: run batchable LLM workloads through provider batch APIs at half price."""

__version__ = "0.1.0"
