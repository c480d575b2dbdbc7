"""OpenAI's Responses API through the gateway with the official `openai` SDK, as current SDK
users call it: `client.responses.create` streaming and not, then `retrieve` and `delete` of the
stored response. Run by tests/it/responses.rs with TOLLGATE_BASE_URL, TOLLGATE_KEY and
TOLLGATE_MODEL set; the test then compares the ledger's costs with its own.
"""
import os

import openai

client = openai.OpenAI(
    base_url=os.environ["TOLLGATE_BASE_URL"], api_key=os.environ["TOLLGATE_KEY"], max_retries=0
)
model = os.environ["TOLLGATE_MODEL"]
# The mock's usage: 1200 input tokens of which 1000 cached, 300 output of which 120 reasoning.
mock = {
    "usage": {
        "prompt_tokens": 1200,
        "cached_tokens": 1000,
        "completion_tokens": 300,
        "reasoning_tokens": 120,
    }
}

response = client.responses.create(model=model, input="ping", extra_body={"mock": mock})
assert response.output_text == "pong", response
assert response.usage.input_tokens == 1200, response.usage
assert response.usage.input_tokens_details.cached_tokens == 1000, response.usage
assert response.usage.output_tokens_details.reasoning_tokens == 120, response.usage

text, types = "", []
stream = client.responses.create(model=model, input="ping", stream=True, extra_body={"mock": mock})
for event in stream:
    types.append(event.type)
    if event.type == "response.output_text.delta":
        text += event.delta
    if event.type == "response.completed":
        assert event.response.usage.output_tokens == 300, event.response.usage
assert text == "pong", text
assert types[0] == "response.created" and types[-1] == "response.completed", types

stored = client.responses.retrieve(response.id)
assert stored.id == response.id and stored.output_text == "pong", stored
client.responses.delete(response.id)
try:
    client.responses.retrieve(response.id)
    raise SystemExit("a deleted response was still found")
except openai.NotFoundError:
    pass

# A model served only by an Anthropic deployment is refused with a 400 that says why.
try:
    client.responses.create(model="test-claude", input="ping")
    raise SystemExit("the Responses API was served for an Anthropic-only model")
except openai.BadRequestError as e:
    assert "not translated for Anthropic" in e.message, e.message
