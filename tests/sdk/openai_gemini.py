"""Gemini behind the gateway through the official `openai` SDK: chat streaming and not, and a
tool call. Run by tests/it/gemini.rs with TOLLGATE_BASE_URL, TOLLGATE_KEY and TOLLGATE_MODEL
set (a model served by a Gemini deployment); the test then compares the ledger's costs.
"""
import json
import os

import openai
from chat_checks import LOOKUP_TOOLS, check_stream_with_usage

client = openai.OpenAI(
    base_url=os.environ["TOLLGATE_BASE_URL"], api_key=os.environ["TOLLGATE_KEY"], max_retries=0
)
model = os.environ["TOLLGATE_MODEL"]
messages = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "ping"},
]

completion = client.chat.completions.create(model=model, messages=messages)
assert completion.choices[0].message.content == "pong", completion
assert completion.choices[0].finish_reason == "stop", completion
assert completion.model == model, completion
assert completion.usage.completion_tokens_details.reasoning_tokens > 0, completion.usage

check_stream_with_usage(client, model, messages, completion)

tools = LOOKUP_TOOLS
called = client.chat.completions.create(
    model=model, messages=messages, tools=tools, tool_choice="required"
)
call = called.choices[0].message.tool_calls[0]
assert call.function.name == "lookup", called
assert json.loads(call.function.arguments) == {}, call
assert called.choices[0].finish_reason == "tool_calls", called

# The call and its result go back to Gemini as functionCall / functionResponse parts.
followed = client.chat.completions.create(
    model=model,
    messages=messages
    + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
       {"role": "tool", "tool_call_id": call.id, "content": "{\"found\": true}"}],
    tools=tools,
)
assert followed.choices[0].message.content == "pong", followed

# What Gemini cannot take is a 400 that names the field.
try:
    client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}],
    )
    raise SystemExit("an image by URL was sent to Gemini")
except openai.BadRequestError as e:
    assert "must be a data: URL" in e.message, e.message
