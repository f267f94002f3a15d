"""Speech stages served by speech workers over the OpenAI-compatible audio API."""
