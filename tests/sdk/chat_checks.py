"""Checks the openai SDK scripts for translated providers (Gemini, Bedrock) share."""

LOOKUP_TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "Looks a word up",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]


def check_stream_with_usage(client, model, messages, completion, **extra):
    """A stream with usage says "pong", ends with "stop" and reports the prompt tokens the
    non-streaming `completion` did."""
    text, finish, usage = "", None, None
    stream = client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True},
        **extra,
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == "pong", text
    assert finish == "stop", finish
    assert usage is not None and usage.prompt_tokens == completion.usage.prompt_tokens, usage
