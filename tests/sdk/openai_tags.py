"""Tags a call the way an eval harness would with the official `openai` SDK: its `metadata`
argument and a header through `extra_headers`. Run by tests/it/tags.rs with TOLLGATE_BASE_URL
and TOLLGATE_KEY set; the test then reads what the ledger stored.
"""
import os

import openai

client = openai.OpenAI(
    base_url=os.environ["TOLLGATE_BASE_URL"], api_key=os.environ["TOLLGATE_KEY"], max_retries=0
)
messages = [{"role": "user", "content": "ping"}]

completion = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=messages,
    metadata={"task": "gsm8k", "split": "test"},
    extra_headers={"x-tollgate-tags": "seed=3"},
)
assert completion.choices[0].message.content == "pong", completion

# A bad tag is a 400 that names it; the SDK raises BadRequestError with the gateway's message.
try:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, extra_headers={"x-tollgate-tags": "task"}
    )
    raise SystemExit("a tag without a value was accepted")
except openai.BadRequestError as e:
    assert e.code == "invalid_tags", e
    assert '"task" is not name=value' in e.message, e.message
