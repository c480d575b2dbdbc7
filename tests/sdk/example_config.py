"""The example tollgate.toml, as a newcomer runs it against the mock: OpenAI and Claude models
through both official SDKs, and embeddings, each answered and priced."""
import os

import anthropic
import openai

base = os.environ["TOLLGATE_BASE_URL"]
key = os.environ["TOLLGATE_KEY"]

oai = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
for model in ["gpt-4o-mini", "claude-sonnet-4-5"]:
    chat = oai.chat.completions.with_raw_response.create(
        model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert float(chat.headers["x-tollgate-cost-usd"]) > 0, (model, chat.headers)
    assert chat.parse().choices[0].message.content, model
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in oai.chat.completions.create(
            model=model, max_tokens=20, stream=True, messages=[{"role": "user", "content": "hi"}]
        )
        if chunk.choices
    )
    assert streamed, model

embedding = oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi")
assert float(embedding.headers["x-tollgate-cost-usd"]) > 0, embedding.headers
assert embedding.parse().data[0].embedding

claude = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
message = claude.messages.create(
    model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
)
assert message.content[0].text and message.usage.output_tokens > 0, message
with claude.messages.stream(
    model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
) as stream:
    assert "".join(stream.text_stream)
print("ok")
