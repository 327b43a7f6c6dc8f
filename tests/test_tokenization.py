from transformers import AutoTokenizer

from rewardforge.data.types import PreferencePair, turn_text
from rewardforge.formatting import TextFormat, render_plain
from rewardforge.modeling import ensure_pad_token
from rewardforge.tokenization import common_prefix_len, tokenize_group, tokenize_pair


def msg(role, content):
    return {"role": role, "content": content}


def long_prompt(turns: int, words: int = 30):
    out = []
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        out.append(msg(role, f"turn{i} " + " ".join(["word"] * words)))
    if out[-1]["role"] != "user":
        out.append(msg("user", "final question?"))
    return out


def test_plain_format_is_documented_shape():
    text = render_plain([msg("system", "be kind"), msg("user", "hi"), msg("assistant", "hello")])
    assert text == "System: be kind\n\nUser: hi\n\nAssistant: hello"


def test_fits_untouched(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    pair = PreferencePair([msg("user", "q")], [msg("assistant", "good answer")], [msg("assistant", "bad")])
    t = tokenize_pair(tok, TextFormat(), pair, 64)
    assert not t.prompt_truncated and not t.response_truncated
    assert t.chosen_ids == tok(render_plain(pair.prompt + pair.chosen))["input_ids"]
    assert t.prefix_len == common_prefix_len([t.chosen_ids, t.rejected_ids]) > 0


def test_oldest_turns_are_dropped_first_and_responses_kept(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    prompt = long_prompt(6)  # turns 0-5 and a final question
    chosen, rejected = [msg("assistant", "the chosen reply " * 5)], [msg("assistant", "the rejected reply")]
    t = tokenize_pair(tok, TextFormat(), PreferencePair(prompt, chosen, rejected), 128)
    assert t.prompt_truncated and not t.response_truncated
    assert max(len(t.chosen_ids), len(t.rejected_ids)) <= 128
    text = tok.decode(t.chosen_ids)
    assert "turn0" not in text and "final question" in text and text.count("chosen reply") == 5
    # the newest turns that fit are kept: dropping one turn fewer would not fit
    kept = [i for i in range(6) if f"turn{i}" in text]
    assert kept and kept == list(range(kept[0], 6)), kept


def test_single_long_turn_is_cut_from_the_left_keeping_cls(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    prompt = [msg("user", "start " + "blah " * 300 + "end of question")]
    t = tokenize_pair(
        tok, TextFormat(), PreferencePair(prompt, [msg("assistant", "yes")], [msg("assistant", "no")]), 64
    )
    assert t.prompt_truncated and not t.response_truncated
    assert len(t.chosen_ids) == 64 and t.chosen_ids[0] == tok.cls_token_id
    assert "end of question" in tok.decode(t.chosen_ids) and "start" not in tok.decode(t.chosen_ids)


def test_response_cut_only_when_it_alone_does_not_fit(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    pair = PreferencePair([msg("user", "q")], [msg("assistant", "long " * 200)], [msg("assistant", "short")])
    t = tokenize_pair(tok, TextFormat(), pair, 32)
    assert t.response_truncated
    assert len(t.chosen_ids) == 32 and len(t.rejected_ids) <= 32


def test_identical_after_truncation_is_detected(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    same_start = "same " * 100
    pair = PreferencePair(
        [msg("user", "q")], [msg("assistant", same_start + "A")], [msg("assistant", same_start + "B")]
    )
    t = tokenize_pair(tok, TextFormat(), pair, 16)
    assert t.identical


def test_group_shares_prompt_cut(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    g = tokenize_group(
        tok, TextFormat(), long_prompt(9), [[msg("assistant", f"answer {i}")] for i in range(4)], 96
    )
    assert len(g.ids) == 4 and g.prompt_truncated
    assert g.prefix_len == common_prefix_len(g.ids)


def test_template_bos_is_not_doubled(minilm_dir):
    """A template that writes BOS, with a tokenizer that adds BOS too: exactly one BOS."""
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    tok.bos_token = "[CLS]"
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    fmt = TextFormat.for_tokenizer(tok)
    assert fmt.kind == "chat_template" and fmt.strip_bos == "[CLS]"
    ids = tokenize_pair(
        tok, fmt, PreferencePair([msg("user", "q")], [msg("assistant", "a")], [msg("assistant", "b")]), 64
    ).chosen_ids
    assert ids.count(tok.cls_token_id) == 1 and ids[0] == tok.cls_token_id


def test_chat_template_used_when_present(smollm2_dir):
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    fmt = TextFormat.for_tokenizer(tok)
    assert fmt.kind == "chat_template"
    text = fmt.render(tok, [msg("user", "hi"), msg("assistant", "hello")])
    assert "<|im_start|>assistant\nhello<|im_end|>" in text


def test_pad_token_is_never_the_last_token_of_a_text(smollm2_dir):
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    fmt = TextFormat.for_tokenizer(tok)
    last = tok(fmt.render(tok, [msg("user", "x"), msg("assistant", "y")]))["input_ids"][-1]
    tok.pad_token = tok.convert_ids_to_tokens(last)  # the worst case: pad == the template's last token
    ensure_pad_token(tok, None, fmt)
    assert tok.pad_token_id is not None and tok.pad_token_id != last
    tok.pad_token = None  # no pad token at all
    ensure_pad_token(tok, None, fmt)
    assert tok.pad_token_id is not None and tok.pad_token_id != last


def test_pairs_over_the_model_limit_are_cut_without_the_indexing_errors_warning(minilm_dir):
    """transformers warns that a text over model_max_length 'will result in indexing errors';
    ours are cut to max_length before any model sees them, so the warning would only mislead."""
    import logging

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logging.getLogger("transformers").addHandler(handler)
    try:
        over = " ".join(["word"] * (tok.model_max_length + 50))
        pair = PreferencePair([msg("user", over)], [msg("assistant", "yes")], [msg("assistant", "no")])
        t = tokenize_pair(tok, TextFormat(), pair, 128)
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert t.prompt_truncated and max(len(t.chosen_ids), len(t.rejected_ids)) <= 128
    assert not [m for m in seen if "indexing errors" in m], seen


def test_a_system_turn_stays_when_old_turns_are_cut(tiny_llama_dir):
    """Cutting the oldest turns dropped the system turn first, and a chat template then scored
    its own default system prompt in its place (helper round 60)."""
    from transformers import AutoTokenizer

    from rewardforge.formatting import TextFormat

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    fmt = TextFormat.for_tokenizer(tok)
    prompt = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "old " * 60},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "q"},
    ]
    group = tokenize_group(tok, fmt, prompt, [[{"role": "assistant", "content": "x"}]], 40)
    text = tok.decode(group.ids[0])
    assert group.prompt_truncated and "old" not in text
    assert "Be brief." in text and "SmolLM" not in text


def test_a_long_last_turn_is_cut_inside_its_text_keeping_the_system_turn_and_role_headers(
    minilm_dir, tiny_llama_dir
):
    """With only the last prompt turn left and still too long, the cut took the oldest tokens of
    the whole text: the system turn, the chat template's `<|im_start|>user` header, the plain
    format's "System:"/"User:" went with them (helper 84), though a system turn is documented to stay."""
    prompt = [
        msg("system", "RULES: be brief."),
        msg("user", "beginning " + "fox jumps " * 150 + "which animal?"),
    ]
    replies = [[msg("assistant", "The fox.")], [msg("assistant", "A dog.")]]
    for folder, expected in (
        (
            minilm_dir,
            ["[CLS] system : rules : be brief. user : ", "which animal? assistant : the fox. [SEP]"],
        ),
        (
            tiny_llama_dir,
            ["<|im_start|>system\nRULES: be brief.<|im_end|>\n<|im_start|>user\n", "which animal?<|im_end|>"],
        ),
    ):
        tok = AutoTokenizer.from_pretrained(folder)
        group = tokenize_group(tok, TextFormat.for_tokenizer(tok), prompt, replies, 64)
        text = tok.decode(group.ids[0])
        assert group.prompt_truncated and not group.response_truncated, text
        assert max(map(len, group.ids)) <= 64 and max(map(len, group.ids)) >= 60  # cut, not emptied
        assert text.startswith(expected[0]) and expected[1] in text and "beginning" not in text, text
        assert group.ids[0][: group.prefix_len] == group.ids[1][: group.prefix_len]  # one cut for both


def test_a_long_system_turn_loses_its_words_before_the_question_after_it(minilm_dir, tiny_llama_dir):
    """helper 87: documents in the system turn and a short question: the text cut emptied the
    question first ("user : assistant :"), then the system text; the longer text goes first."""
    documents = " ".join(f"doc{i} says fact{i}." for i in range(150))
    prompt = [msg("system", documents), msg("user", "What does doc3 say?")]
    for folder, header, question in (
        (minilm_dir, "[CLS] system : ", "user : what does doc3 say? assistant : fact3"),
        (tiny_llama_dir, "<|im_start|>system\n", "<|im_start|>user\nWhat does doc3 say?<|im_end|>"),
    ):
        tok = AutoTokenizer.from_pretrained(folder)
        group = tokenize_group(tok, TextFormat.for_tokenizer(tok), prompt, [[msg("assistant", "fact3")]], 64)
        text = tok.decode(group.ids[0])
        assert group.prompt_truncated and len(group.ids[0]) <= 64
        assert text.startswith(header) and question in text and "doc149 says fact149." in text, text
        assert "doc0 " not in text


def whole_and_cut(monkeypatch, tok, fmt, prompt, completions, max_length):
    """`tokenize_group` of whole texts, and with texts over 1000 characters cut first; also the
    longest turn text the cut run tokenized."""
    import rewardforge.tokenization as tokenization

    monkeypatch.setattr(tokenization, "LONG_TEXT_FLOOR", 10**9)  # as before: whole texts
    whole = tokenize_group(tok, fmt, prompt, completions, max_length)
    monkeypatch.setattr(tokenization, "LONG_TEXT_FLOOR", 1_000)
    seen, encode = [], tokenization._encode

    def recording(tok, fmt, prompt, completions):
        seen.append(max(len(turn_text(m)) for m in prompt + sum(completions, [])))
        return encode(tok, fmt, prompt, completions)

    monkeypatch.setattr(tokenization, "_encode", recording)
    cut = tokenize_group(tok, fmt, prompt, completions, max_length)
    monkeypatch.setattr(tokenization, "_encode", encode)
    return whole, cut, max(seen)


def test_a_huge_text_is_cut_before_tokenizing_to_the_same_tokens(minilm_dir, smollm2_dir, monkeypatch):
    """helper 96: one 50 MB reply was tokenized whole several times (7.5 GB after 11 minutes) to
    keep its first tokens. Texts past the bound are cut first; the tokens kept are those the whole
    text gives, for a huge reply, a huge last prompt turn and a huge system turn."""
    import random

    rng = random.Random(0)
    words = ["alpha", "beta", "gamma,", "delta.", "42", "über", "日本語", "(x)", "  ", "\n"]

    def huge(n):
        return " ".join(rng.choice(words) for _ in range(n))

    big = huge(40_000)  # about 220,000 characters
    hexes = "".join(rng.choice("0123456789abcdef") for _ in range(30_000))
    cases = [
        ([msg("user", "q")], [msg("assistant", big)], [msg("assistant", "short")]),
        ([msg("system", "be kind"), msg("user", "old"), msg("assistant", "ok"), msg("user", big)],
         [msg("assistant", "yes")], [msg("assistant", "no")]),
        ([msg("system", big), msg("user", "q?")], [msg("assistant", "yes")], [msg("assistant", big + " no")]),
        # helper 99: characters that give few tokens or none: a long word WordPiece reads as one
        # [UNK], whitespace and zero-width runs a normalizer drops; the words after them fit
        ([msg("user", "verdict?")], [msg("assistant", f"Digest: {hexes} So yes.")],
         [msg("assistant", f"Digest: {hexes} So no.")]),
        ([msg("user", f"Check this digest: {hexes} please")], [msg("assistant", "ok")], [msg("assistant", "no")]),
        ([msg("user", "q")], [msg("assistant", "a" + " " * 30_000 + "\u200b" * 30_000 + " the end")],
         [msg("assistant", "b")]),
    ]  # fmt: skip
    for folder in (minilm_dir, smollm2_dir):
        tok = AutoTokenizer.from_pretrained(folder)
        fmt = TextFormat.for_tokenizer(tok)
        for prompt, chosen, rejected in cases:
            whole, cut, longest = whole_and_cut(monkeypatch, tok, fmt, prompt, [chosen, rejected], 128)
            assert cut == whole, (folder, prompt[-1]["content"][:20])
            if big in str(prompt + chosen + rejected):
                assert longest < len(big) / 5  # the whole text was never tokenized


def test_the_cut_of_a_huge_text_never_splits_a_word(minilm_dir, monkeypatch):
    """helper 100: a cut inside a 200-character word (one [UNK] whole) left a fragment of dozens
    of tokens, so a pair that fits whole was cut, and made identical."""

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    fmt = TextFormat.for_tokenizer(tok)
    body = "z" * 900 + " " + "q9" * 100 + " " + "y" * 3000  # the cut at 1000 lands in the q9 word
    cases = [
        ([msg("user", "q")], [msg("assistant", body + " A")], [msg("assistant", body + " B")]),
        ([msg("user", body[::-1] + " ?")], [msg("assistant", "A")], [msg("assistant", "B")]),
    ]
    for prompt, chosen, rejected in cases:
        whole, cut, _ = whole_and_cut(monkeypatch, tok, fmt, prompt, [chosen, rejected], 16)
        assert cut == whole
        assert whole.ids[0] != whole.ids[1] and not whole.response_truncated


def test_a_huge_tool_call_argument_is_cut_to_the_same_tokens(minilm_dir, smollm2_dir, monkeypatch):
    """helper 99: only a turn's content was cut; a 50 MB call argument was tokenized whole
    several times (3.5 minutes and 10.7 GB for one `score` item)."""
    import random

    rng = random.Random(1)
    big = " ".join(rng.choice(["alpha", "beta", "x=1;", '"q"', "日本", "\\n"]) for _ in range(16_000))

    def call(arguments):
        return {"type": "function", "function": {"name": "run", "arguments": arguments}}

    reply = [{"role": "assistant", "content": "", "tool_calls": [call({"code": big, "n": 1})]}]
    other = [{"role": "assistant", "content": "no"}]
    history = [msg("user", "go"), {"role": "assistant", "content": "ok", "tool_calls": [call(big)]},
               {"role": "tool", "content": "done"}, msg("user", "and?")]  # fmt: skip
    cases = [([msg("user", "q")], reply, other), (history, [msg("assistant", "yes")], other)]
    # helper 101: JSON writes a newline as "\n", and the n joins the next 100-letter word, which
    # WordPiece then reads as one [UNK]: the raw text's tokens overstate the written ones
    words = "".join("\n" + "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(100)) for _ in range(60))
    dense = [{"role": "assistant", "content": "", "tool_calls": [call({"code": words})]}]
    cases += [
        ([msg("user", "q")], dense, other),
        ([msg("user", "go"), dense[0]], [msg("assistant", "y")], other),
    ]
    for folder in (minilm_dir, smollm2_dir):
        tok = AutoTokenizer.from_pretrained(folder)
        fmt = TextFormat.for_tokenizer(tok)
        for prompt, chosen, rejected in cases:
            whole, cut, longest = whole_and_cut(monkeypatch, tok, fmt, prompt, [chosen, rejected], 64)
            assert cut == whole, (folder, prompt)
            if big in str(prompt + chosen):
                assert longest < len(big) / 3  # the whole argument was never tokenized
