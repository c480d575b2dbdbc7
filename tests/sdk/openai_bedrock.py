"""Bedrock behind the gateway through the official `openai` SDK: chat streaming and not, and a
tool call. Run by tests/it/bedrock.rs with TOLLGATE_BASE_URL, TOLLGATE_KEY and TOLLGATE_MODEL
set; the test then compares the ledger's costs.
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

completion = client.chat.completions.create(model=model, messages=messages, max_tokens=50)
assert completion.choices[0].message.content == "pong", completion
assert completion.choices[0].finish_reason == "stop", completion
assert completion.usage.prompt_tokens_details.cached_tokens > 0, completion.usage

check_stream_with_usage(client, model, messages, completion, max_tokens=50)

tools = LOOKUP_TOOLS
for stream in [False, True]:
    if stream:
        name, arguments, finish = None, "", None
        for chunk in client.chat.completions.create(
            model=model, messages=messages, tools=tools, tool_choice="required", stream=True,
            max_tokens=50,
        ):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    name = call.function.name or name
                    arguments += call.function.arguments or ""
                finish = choice.finish_reason or finish
        assert name == "lookup" and json.loads(arguments) == {}, (name, arguments)
        assert finish == "tool_calls", finish
    else:
        called = client.chat.completions.create(
            model=model, messages=messages, tools=tools, tool_choice="required", max_tokens=50
        )
        call = called.choices[0].message.tool_calls[0]
        assert call.function.name == "lookup", called
        assert called.choices[0].finish_reason == "tool_calls", called
