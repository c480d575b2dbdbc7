"""Drives the gateway with the official `openai` SDK, changing only base_url and api_key.

Run by tests/sdk.rs with TOLLGATE_BASE_URL and TOLLGATE_KEY set; exits non-zero on the
first mismatch.
"""
import os

import openai

base_url = os.environ["TOLLGATE_BASE_URL"]
key = os.environ["TOLLGATE_KEY"]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
messages = [{"role": "user", "content": "ping"}]

# Non-streaming: content and usage as the upstream sent them.
raw = client.chat.completions.with_raw_response.create(model="test-model", messages=messages)
completion = raw.parse()
assert completion.choices[0].message.content == "pong", completion
assert completion.usage.prompt_tokens == 10 and completion.usage.completion_tokens == 20, completion.usage
assert raw.headers.get("x-tollgate-request-id"), raw.headers
assert raw.headers.get("x-tollgate-cost-usd") == "0.000225", raw.headers

# Streaming without asking for usage: the content arrives, no usage chunk does.
chunks = list(client.chat.completions.create(model="test-model", messages=messages, stream=True))
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text == "pong", text
assert all(c.usage is None for c in chunks), chunks[-1]

# Streaming with usage: the final chunk carries it.
chunks = list(client.chat.completions.create(
    model="test-model", messages=messages, stream=True, stream_options={"include_usage": True}))
assert chunks[-1].usage.completion_tokens == 20, chunks[-1]

# Embeddings.
embedding = client.embeddings.create(model="test-embed", input="hello")
assert len(embedding.data[0].embedding) == 3 and embedding.usage.prompt_tokens == 10, embedding

# Models: only what the key may use.
models = sorted(m.id for m in client.models.list())
assert "test-model" in models, models

# Errors map onto the SDK's exception types.
try:
    openai.OpenAI(base_url=base_url, api_key="tg-unknown", max_retries=0).chat.completions.create(
        model="test-model", messages=messages)
    raise AssertionError("unknown key accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.body["code"] == "model_not_found", e.body

print("openai SDK: all checks passed")
