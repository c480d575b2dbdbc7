"""Bedrock behind the gateway through the official `openai` SDK: chat streaming and not, and a
tool call. Run by tests/it/bedrock.rs with TOLLGATE_BASE_URL, TOLLGATE_KEY and TOLLGATE_MODEL
set; the test then compares the ledger's costs.
"""
import json
import os

import openai

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

text, finish, usage = "", None, None
stream = client.chat.completions.create(
    model=model, messages=messages, max_tokens=50, stream=True,
    stream_options={"include_usage": True},
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

tools = [{"type": "function", "function": {"name": "lookup", "description": "Looks a word up",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
for stream in [False, True]:
    if stream:
        name, arguments = None, ""
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
