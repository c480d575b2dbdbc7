"""Drives the gateway with the official `anthropic` SDK, changing only base_url and api_key.

Run by tests/sdk.rs with TOLLGATE_ANTHROPIC_BASE_URL and TOLLGATE_KEY set; exits non-zero on
the first mismatch.
"""
import os

import anthropic

client = anthropic.Anthropic(base_url=os.environ["TOLLGATE_ANTHROPIC_BASE_URL"],
                             api_key=os.environ["TOLLGATE_KEY"], max_retries=0)
messages = [{"role": "user", "content": "ping"}]

message = client.messages.create(model="test-claude", max_tokens=64, messages=messages)
assert message.content[0].text == "pong", message
assert message.usage.output_tokens == 20, message.usage
assert message.stop_reason == "end_turn", message

with client.messages.stream(model="test-claude", max_tokens=64, messages=messages) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
assert text == "pong", text
assert final.usage.output_tokens == 20, final.usage

try:
    anthropic.Anthropic(base_url=os.environ["TOLLGATE_ANTHROPIC_BASE_URL"], api_key="tg-unknown",
                        max_retries=0).messages.create(model="test-claude", max_tokens=8, messages=messages)
    raise AssertionError("unknown key accepted")
except anthropic.AuthenticationError as e:
    assert e.status_code == 401

print("anthropic SDK: all checks passed")
