"""Tool calls in chat messages (agentic preference data): read in OpenAI's form and the flat
forms datasets use, compared, written into the text, scored alike in Python, HTTP and training.

Before, an assistant turn that only called a tool (`content: null`) was refused as "missing",
and `tool_calls` beside a text were dropped: two replies that differed only in their call
read as the same reply.
"""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from _rows import assistant, jsonl, user

from rewardforge.cli import main
from rewardforge.data import DataError, load_pairs
from rewardforge.formatting import TextFormat, render_plain


def call(name: str, arguments, call_id: str | None = None, *, as_json_text: bool = True) -> dict:
    args = json.dumps(arguments) if as_json_text and not isinstance(arguments, str) else arguments
    out = {"type": "function", "function": {"name": name, "arguments": args}}
    if call_id:
        out["id"] = call_id
    return out


def calling(*calls: dict, content=None) -> dict:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def tool(content: str, call_id: str = "c1", name: str = "get_weather") -> dict:
    return {"role": "tool", "content": content, "tool_call_id": call_id, "name": name}


ASK = [user("What's the weather in Paris?")]


def pairs_of(tmp_path, rows, **kw):
    return load_pairs(jsonl(tmp_path, rows), **kw).pairs


def test_openai_tool_calls_are_read_with_parsed_arguments_and_kept(tmp_path):
    rows = [
        {
            "prompt": ASK,
            "chosen": [calling(call("get_weather", {"city": "Paris"}, "c1"))],
            "rejected": [calling(call("get_weather", {"city": "London"}, "c2"))],
        }
    ]
    (pair,) = pairs_of(tmp_path, rows)
    chosen = pair.chosen[0]
    assert chosen["content"] == ""
    assert chosen["tool_calls"] == [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}, "id": "c1"}
    ]
    assert pair.rejected[0]["tool_calls"][0]["function"]["arguments"] == {"city": "London"}
    assert "Paris" in pair.chosen_text and "London" in pair.rejected_text


def test_replies_that_differ_only_in_their_call_are_a_pair_and_the_same_call_is_identical(tmp_path):
    same_text = [
        {
            "prompt": ASK,
            "chosen": [calling(call("get_weather", {"city": "Paris"}), content="Let me check.")],
            "rejected": [calling(call("get_weather", {"city": "Pariss"}), content="Let me check.")],
        }
    ]
    assert len(pairs_of(tmp_path, same_text)) == 1
    same_call = [
        {
            "prompt": ASK,
            "chosen": [calling(call("get_weather", {"city": "Paris"}, "a"))],
            "rejected": [calling(call("get_weather", {"city": "Paris"}, "b"))],  # only the id differs
        }
    ]
    with pytest.raises(DataError, match="identical to 'chosen'"):
        pairs_of(tmp_path, same_call)


def test_flat_calls_legacy_function_call_and_unparsable_arguments(tmp_path):
    rows = [
        {
            "prompt": ASK,
            "chosen": [
                {"role": "assistant", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
            ],
            # OpenAI's older single call; arguments that are not JSON stay as written
            "rejected": [
                {
                    "role": "assistant",
                    "content": "",
                    "function_call": {"name": "get_weather", "arguments": "{city: Paris"},
                }
            ],
        }
    ]
    (pair,) = pairs_of(tmp_path, rows)
    assert pair.chosen[0]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert pair.rejected[0]["tool_calls"][0]["function"]["arguments"] == "{city: Paris"


@pytest.mark.parametrize(
    ("chosen", "field", "reason"),
    [
        ([{"role": "assistant", "content": None}], "chosen[0].content", "missing"),
        (
            [calling({"type": "function", "function": {"arguments": "{}"}})],
            "chosen[0].tool_calls[0].function.name",
            "name",
        ),
        ([calling({"name": "f", "arguments": 3})], "chosen[0].tool_calls[0].arguments", "expected an object"),
        ([calling("get_weather")], "chosen[0].tool_calls[0]", "expected a tool call object"),
        (
            [{"role": "assistant", "content": "x", "tool_calls": {"name": "f"}}],
            "chosen[0].tool_calls",
            "list",
        ),
        (
            [{"role": "user", "content": "x", "tool_calls": [call("f", {})]}, assistant("y")],
            "chosen[0].tool_calls",
            "only the assistant",
        ),
    ],
)
def test_bad_tool_calls_name_the_field(tmp_path, chosen, field, reason):
    rows = [{"prompt": ASK, "chosen": chosen, "rejected": [assistant("no idea")]}]
    with pytest.raises(DataError) as err:
        pairs_of(tmp_path, rows)
    assert err.value.field == field and reason in err.value.reason and err.value.location == "line 1"


def test_agent_transcripts_share_their_tool_turns_as_the_prompt(tmp_path):
    """Implicit prompt: two whole agent transcripts that part after the tool's result."""
    shared = [*ASK, calling(call("get_weather", {"city": "Paris"}, "c1")), tool("18C, sunny")]
    rows = [
        {
            "chosen": [*shared, assistant("It is 18C and sunny.")],
            "rejected": [*shared, assistant("It is raining.")],
        },
        # transcripts that part at the call: the calls are the replies
        {
            "chosen": [*ASK, calling(call("get_weather", {"city": "Paris"}))],
            "rejected": [*ASK, calling(call("get_time", {"city": "Paris"}))],
        },
    ]
    first, second = pairs_of(tmp_path, rows)
    assert [m["role"] for m in first.prompt] == ["user", "assistant", "tool"]
    assert first.prompt[1]["tool_calls"][0]["id"] == "c1" and first.prompt[2]["name"] == "get_weather"
    assert first.chosen == [assistant("It is 18C and sunny.")]
    assert second.prompt == ASK
    assert second.chosen[0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second.rejected[0]["tool_calls"][0]["function"]["name"] == "get_time"


def test_a_reply_that_ends_with_the_tool_result_is_refused(tmp_path):
    """A response must end with the assistant's turn; the tool's own answer is not a reply."""
    rows = [
        {
            "prompt": ASK,
            "chosen": [calling(call("get_weather", {"city": "Paris"})), tool("18C")],
            "rejected": [assistant("No idea.")],
        }
    ]
    with pytest.raises(DataError, match="ends with a 'tool' message"):
        pairs_of(tmp_path, rows)


def test_parquet_tool_calls_with_null_keys(tmp_path):
    """Arrow gives every message every key: null tool_calls on plain turns, null content on calls."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "prompt": ASK,
            "chosen": [calling(call("get_weather", {"city": "Paris"}, as_json_text=False))],
            "rejected": [assistant("I cannot check the weather.")],
        },
        {  # other argument names: Arrow gives every call of the column every name, as nulls
            "prompt": ASK,
            "chosen": [calling(call("get_weather", {"city": "Paris", "units": "C"}, as_json_text=False))],
            "rejected": [calling(call("get_weather", {"city": "Paris"}, as_json_text=False))],
        },
    ]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    first, second = load_pairs(str(path)).pairs
    assert first.chosen[0]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert "tool_calls" not in first.rejected[0] and "tool_calls" not in first.prompt[0]
    assert second.rejected[0]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}


def test_plain_format_writes_each_call_on_a_line():
    text = render_plain([*ASK, calling(call("get_weather", {"city": "Paris"}), content="Checking.")])
    assert text.endswith('Assistant: Checking.\nTool call: get_weather({"city": "Paris"})')


WRITES_CALLS = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }} {{ c.function.arguments | tojson }}"
    "</tool_call>{% endfor %}<|im_end|>\n{% endfor %}"
)


@pytest.fixture(scope="module")
def templates(tmp_path_factory, tiny_llama_dir):
    """The tiny Llama's tokenizer (SmolLM2's template, which ignores tool calls) and a copy whose
    template writes them (as Qwen's and Llama 3.1's do)."""
    from transformers import AutoTokenizer

    ignores = AutoTokenizer.from_pretrained(tiny_llama_dir)
    writes = AutoTokenizer.from_pretrained(tiny_llama_dir)
    writes.chat_template = WRITES_CALLS
    return ignores, writes


def test_a_template_that_ignores_calls_gets_them_as_text_and_one_that_writes_them_does(templates):
    ignores, writes = templates
    talk = [*ASK, calling(call("get_weather", {"city": "Paris"}, as_json_text=False), content="")]
    ignored = TextFormat.for_tokenizer(ignores).render(ignores, talk)
    assert 'Tool call: get_weather({"city": "Paris"})' in ignored
    assert "get_weather" not in ignores.apply_chat_template(talk, tokenize=False)  # what it did alone
    written = TextFormat.for_tokenizer(writes).render(writes, talk)
    assert '<tool_call>get_weather {"city": "Paris"}</tool_call>' in written and "Tool call:" not in written


DROPS_TEXT = (  # Hermes' and Llama 3.1's way: a turn with calls is written as its calls alone
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }} "
    "{{ c.function.arguments | tojson }}</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}"
    "<|im_end|>\n{% endfor %}"
)
FIRST_CALL_ONLY = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% if m.tool_calls %}<tool_call>{{ m.tool_calls[0].function.name }} "
    "{{ m.tool_calls[0].function.arguments | tojson }}</tool_call>{% endif %}<|im_end|>\n{% endfor %}"
)


@pytest.mark.parametrize("template", [DROPS_TEXT, FIRST_CALL_ONLY])
def test_a_template_that_loses_the_text_or_a_call_gets_them_as_text(templates, template):
    _, tok = templates
    tok.chat_template = template
    talk = [
        *ASK,
        calling(
            call("get_weather", {"city": "Paris"}, as_json_text=False),
            call("get_time", {}, as_json_text=False),
            content="Let me look.",
        ),
    ]
    text = TextFormat.for_tokenizer(tok).render(tok, talk)
    assert 'Let me look.\nTool call: get_weather({"city": "Paris"})\nTool call: get_time({})' in text
    tok.chat_template = WRITES_CALLS


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [('{"city": "\\ud800"}', "lone surrogate"), ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", None)],
)
def test_arguments_text_with_a_lone_surrogate_or_deep_nesting(tmp_path, arguments, problem):
    rows = [{"prompt": ASK, "chosen": [calling(call("f", arguments))], "rejected": [assistant("no")]}]
    if problem is None:  # too deep for json: kept as the text it is
        (pair,) = pairs_of(tmp_path, rows)
        assert pair.chosen[0]["tool_calls"][0]["function"]["arguments"] == arguments
        return
    with pytest.raises(DataError) as err:
        pairs_of(tmp_path, rows)
    assert err.value.field == "chosen[0].tool_calls[0].function.arguments" and problem in err.value.reason


def test_reward_model_and_server_score_tool_calls_alike(tiny_llama_dir):
    from rewardforge.inference import RewardModel
    from rewardforge.serving import ServeSettings, create_app
    from rewardforge.serving.testing import ServerThread

    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    paris = [calling(call("get_weather", {"city": "Paris"}, "c1"))]
    london = [calling(call("get_weather", {"city": "London"}, "c1"))]
    s_paris, s_london = rm.score(ASK, paris), rm.score(ASK, london)
    assert s_paris != s_london
    with ServerThread(create_app(rm, ServeSettings())) as server:
        r = httpx.post(server.url + "/v1/score", json={"prompt": ASK, "response": paris})
        assert r.status_code == 200, r.text
        assert r.json()["score"] == pytest.approx(s_paris, abs=1e-5)
        bad = httpx.post(server.url + "/v1/score", json={"prompt": ASK, "response": [{"role": "assistant"}]})
        assert bad.status_code == 422 and "missing" in bad.text
        # every form the data layer reads, the server reads too
        flat = [
            {"role": "Assistant", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
        ]
        legacy = [
            {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ]
        for response in (flat, legacy):
            r = httpx.post(server.url + "/v1/score", json={"prompt": ASK, "response": response})
            assert r.status_code == 200, r.text
            assert r.json()["score"] == pytest.approx(s_paris, abs=1e-5)
        talk = [*ASK, {"role": "function", "name": "get_weather", "content": "18C"}]
        r = httpx.post(server.url + "/v1/score", json={"prompt": talk, "response": "18C."})
        assert r.status_code == 200 and r.json()["score"] == pytest.approx(rm.score(talk, "18C."), abs=1e-5)
    with pytest.raises(ValueError, match="only the assistant"):
        rm.score([{**ASK[0], "tool_calls": [call("f", {})]}], "x")


def test_train_and_eval_on_agent_pairs(tmp_path, tiny_llama_dir):
    """End to end on a decoder whose template ignores calls: the saved format reads them as text."""
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    rows = [
        {
            "prompt": [user(f"Weather in city {i}?")],
            "chosen": [calling(call("get_weather", {"city": f"city {i}"}))],
            "rejected": [calling(call("get_time", {"city": f"city {i}"}))],
        }
        for i in range(8)
    ]
    data = jsonl(tmp_path, rows)
    out = tmp_path / "rm"
    argv = ["train", "--model", str(model), "--data", data, "--max-steps", "1", "--batch-size", "4"]
    assert main([*argv, "--output", str(out), "--disable_tqdm", "true"]) == 0
    assert main(["eval", "--model", str(out), "--data", data, "--output", str(tmp_path / "ev")]) == 0
    line = json.loads((tmp_path / "ev" / "scores.jsonl").read_text().splitlines()[0])
    assert line["score_chosen"] != line["score_rejected"] and line["len_chosen"] > 20
    from transformers import pipeline

    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(str(out))
    pipe = pipeline("text-classification", model=str(out), function_to_apply="none")
    for side in ("chosen", "rejected"):
        text = rm.format_text(rows[0]["prompt"], rows[0][side])
        assert "Tool call: get_" in text
        assert pipe(text)[0]["score"] == pytest.approx(line[f"score_{side}"], abs=1e-4)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOLS_TEXT = "Available tools:\n" + json.dumps(WEATHER_TOOL)


@pytest.mark.parametrize(
    "tools",
    [[WEATHER_TOOL], json.dumps([WEATHER_TOOL]), [json.dumps(WEATHER_TOOL)], WEATHER_TOOL],
    ids=["objects", "json-text", "json-texts", "one-object"],
)
def test_a_tools_column_joins_the_system_turn(tmp_path, tools):
    """Before, a `tools` column was ignored: the model never saw which functions existed."""
    rows = [
        {"prompt": ASK, "chosen": [calling(call("get_weather", {"city": "Paris"}))],
         "rejected": [calling(call("get_wether", {"city": "Paris"}))], "tools": tools},
        {"prompt": ASK, "chosen": [assistant("18C.")], "rejected": [assistant("Hot.")], "tools": tools,
         "system": "Be brief."},
        {"prompt": [{"role": "system", "content": "Be brief."}, *ASK], "chosen": [assistant("18C.")],
         "rejected": [assistant("Hot.")], "tools": tools},
        {"prompt": ASK, "chosen": [assistant("18C.")], "rejected": [assistant("Hot.")], "tools": []},
    ]  # fmt: skip
    first, second, third, none = pairs_of(tmp_path, rows)
    assert first.prompt == [{"role": "system", "content": TOOLS_TEXT}, *ASK]
    assert second.prompt == [{"role": "system", "content": "Be brief.\n\n" + TOOLS_TEXT}, *ASK]
    assert third.prompt == second.prompt
    assert none.prompt == ASK


def test_openais_older_functions_column_is_read_as_the_tools(tmp_path):
    """`functions` (OpenAI's name before `tools`) was dropped while `tools` was read."""
    bare = WEATHER_TOOL["function"] if "function" in WEATHER_TOOL else WEATHER_TOOL
    rows = [
        {"prompt": ASK, "chosen": [assistant("18C.")], "rejected": [assistant("Hot.")], "functions": [bare]}
    ]
    (pair,) = pairs_of(tmp_path, rows)
    assert pair.prompt[0]["role"] == "system" and bare["name"] in pair.prompt[0]["content"]


@pytest.mark.parametrize(
    "tools, field, reason",
    [
        ("not json", "tools", "not"),
        ([{"description": "no name"}], "tools[0]", "name"),
        ([{"type": "function", "function": {"name": " "}}], "tools[0]", "name"),
        ([3], "tools[0]", "object"),
        (7, "tools", "list"),
        ([{"name": "f", "x": float("nan")}], "tools[0]", "JSON"),
    ],
)
def test_bad_tool_definitions_name_the_field(tmp_path, tools, field, reason):
    path = tmp_path / "d.jsonl"
    row = {"prompt": "Hi", "chosen": "a", "rejected": "b", "tools": tools}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError) as err:
        load_pairs(str(path))
    assert err.value.field == field and reason in str(err.value) and "line 1" in str(err.value)


def test_parquet_tool_definitions_with_null_keys(tmp_path):
    """Arrow gives each definition the other definitions' keys, as nulls: they are left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = {"type": "function", "function": {"name": "get_time", "description": "Local time."}}
    rows = [{"prompt": "Time?", "chosen": "Noon.", "rejected": "Late.", "tools": [WEATHER_TOOL, other]}]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    (pair,) = load_pairs(str(path)).pairs
    assert pair.prompt[0]["content"] == "\n".join(
        ["Available tools:", json.dumps(WEATHER_TOOL), json.dumps(other)]
    )


def test_tools_score_alike_in_training_data_score_cli_server_and_rlhf_prompts(tmp_path, tiny_llama_dir):
    """One text for a prompt with tools, wherever it is scored."""
    from rewardforge.data.context import with_tools
    from rewardforge.inference import RewardModel
    from rewardforge.rlhf.prompts import read_prompts
    from rewardforge.serving import ServeSettings, create_app
    from rewardforge.serving.testing import ServerThread

    rm = RewardModel.from_pretrained(str(tiny_llama_dir))
    reply = [calling(call("get_weather", {"city": "Paris"}))]
    (pair,) = pairs_of(
        tmp_path, [{"prompt": ASK, "chosen": reply, "rejected": [assistant("No.")], "tools": [WEATHER_TOOL]}]
    )
    expected = rm.score(pair.prompt, reply)
    assert expected == pytest.approx(rm.score(with_tools(ASK, [WEATHER_TOOL]), reply), abs=1e-6)
    assert with_tools(ASK[0]["content"], [WEATHER_TOOL]) == pair.prompt  # a prompt text, read as in training
    assert expected != pytest.approx(rm.score(ASK, reply), abs=1e-6)  # the tools are seen
    assert rm.score_batch([{"prompt": ASK, "response": reply, "tools": [WEATHER_TOOL]}]) == pytest.approx(
        [expected], abs=1e-5
    )

    rows = jsonl(tmp_path, [{"prompt": "What's the weather in Paris?", "response": reply, "tools": [WEATHER_TOOL]},
                            {"response": [*ASK, *reply], "tools": json.dumps([WEATHER_TOOL])}], "items.jsonl")  # fmt: skip
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--model", str(tiny_llama_dir), "--input", rows, "--output", str(out)]) == 0
    assert [json.loads(line)["score"] for line in out.read_text().splitlines()] == pytest.approx(
        [expected, expected], abs=1e-5
    )

    with ServerThread(create_app(rm, ServeSettings())) as server:
        body = {"prompt": ASK, "response": reply, "tools": [WEATHER_TOOL]}
        r = httpx.post(server.url + "/v1/score", json=body)
        assert r.status_code == 200 and r.json()["score"] == pytest.approx(expected, abs=1e-5)
        r = httpx.post(server.url + "/v1/score", json={"items": [body]})
        assert r.status_code == 200 and r.json()["scores"] == pytest.approx([expected], abs=1e-5)
        r = httpx.post(
            server.url + "/v1/compare",
            json={"prompt": ASK, "responses": [reply, "No."], "tools": [WEATHER_TOOL]},
        )
        assert r.status_code == 200 and r.json()["scores"][0] == pytest.approx(expected, abs=1e-5)
        bad = httpx.post(server.url + "/v1/score", json={**body, "tools": [{"description": "x"}]})
        assert bad.status_code == 422 and "name" in bad.text
        for form in (WEATHER_TOOL, [json.dumps(WEATHER_TOOL)]):  # every form a tools column takes
            r = httpx.post(server.url + "/v1/score", json={**body, "tools": form})
            assert r.status_code == 200 and r.json()["score"] == pytest.approx(expected, abs=1e-5)
        bad = httpx.post(
            server.url + "/v1/compare", json={"prompt": ASK, "responses": ["a", "b"], "tools": 3}
        )
        assert (
            bad.status_code == 422
            and "tools" in bad.json()["error"]
            and "responses" not in bad.json()["error"]
        )

    prompts = jsonl(
        tmp_path, [{"prompt": ASK, "tools": [WEATHER_TOOL], "system": "Be brief.", "answer": "18"}], "p.jsonl"
    )
    (record,) = read_prompts(prompts)
    assert record["prompt"][0] == {"role": "system", "content": "Be brief.\n\n" + TOOLS_TEXT}
    assert record["tools"] == [WEATHER_TOOL] and record["answer"] == "18"  # still a column for env rewards


def test_tools_written_by_pandas_to_csv(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        {"prompt": ["Weather?"], "chosen": ["Sunny."], "rejected": ["No."], "tools": [[WEATHER_TOOL]]}
    )
    frame.to_csv(tmp_path / "t.csv", index=False)  # Python text: [{'type': 'function', ...}]
    (pair,) = load_pairs(str(tmp_path / "t.csv")).pairs
    assert pair.prompt[0] == {"role": "system", "content": TOOLS_TEXT}
