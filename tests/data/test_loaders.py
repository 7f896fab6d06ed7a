"""Loaders: each shape loads, each kind of bad input fails with the file, the line and the field."""

import json

import pytest

from minift.data.loaders import (check_examples, export_jsonl, label_set, load_csv, load_examples, load_jsonl,
                         load_text)
from minift.errors import InputError, MissingFileError


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def jsonl(*records):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def test_instruction_jsonl_loads_with_default_input_and_counts_blanks(tmp_path):
    p = write(tmp_path, "sft.jsonl", jsonl({"instruction": "Say hi.", "output": "Hi."}, "", "  ",
                                           {"instruction": "Add", "input": "2 and 3", "output": "5", "id": 7}))
    ex = load_jsonl(p)
    assert ex == [{"instruction": "Say hi.", "input": "", "output": "Hi."},
                  {"instruction": "Add", "input": "2 and 3", "output": "5"}]
    assert ex.report.kind == "instruction"
    assert ex.report.n_examples == 2 and ex.report.n_blank_skipped == 2
    assert ex.report.ignored_fields == ["id"]
    assert "2 instruction examples" in ex.report.summary()


def test_labelled_jsonl_int_labels_become_strings(tmp_path):
    p = write(tmp_path, "cls.jsonl", jsonl({"text": "good", "label": 1}, {"text": "bad", "label": 0}))
    ex = load_jsonl(p)
    assert [e["label"] for e in ex] == ["1", "0"]
    assert ex.report.label_counts == {"1": 1, "0": 1}
    assert label_set(ex) == ["0", "1"]


@pytest.mark.parametrize("lines, line_no, needle", [
    ([{"instruction": "a", "output": "b"}, {"instruction": "c"}], 2, "field 'output' missing"),
    ([{"instruction": "a", "output": "b"}, {"instruction": "c", "output": 3}], 2, "field 'output' is not a string"),
    ([{"instruction": "a", "output": "b"}, {"instruction": "", "output": "x"}], 2, "field 'instruction' is empty"),
    ([{"instruction": "a", "output": "b"}, "{not json"], 2, "not valid JSON"),
    ([{"instruction": "a", "output": "b"}, "[1, 2]"], 2, "expected a JSON object"),
    ([{"text": "a", "label": "x"}, {"text": "b"}], 2, "field 'label' missing"),
    ([{"foo": 1}], 1, "cannot tell the shape"),
    ([{"instruction": "a", "input": 5, "output": "b"}], 1, "field 'input' is not a string"),
])
def test_jsonl_errors_name_file_line_and_field(tmp_path, lines, line_no, needle):
    p = write(tmp_path, "bad.jsonl", jsonl(*lines))
    with pytest.raises(InputError) as e:
        load_jsonl(p)
    assert f"bad.jsonl:{line_no}:" in str(e.value) and needle in str(e.value)


def test_first_record_without_label_in_a_labelled_file(tmp_path):
    p = write(tmp_path, "cls.jsonl", jsonl({"text": "a"}, {"text": "b", "label": "x"}))
    with pytest.raises(InputError, match=r"cls\.jsonl:1: field 'label' missing"):
        load_jsonl(p)


def test_line_numbers_count_blank_lines(tmp_path):
    p = write(tmp_path, "gap.jsonl", jsonl({"text": "a", "label": "x"}, "", "", {"text": "b", "lable": "y"}))
    with pytest.raises(InputError, match=r"gap\.jsonl:4: field 'label' missing"):
        load_jsonl(p)


def test_empty_missing_single_class_and_unknown_label(tmp_path):
    with pytest.raises(MissingFileError):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no examples"):
        load_jsonl(write(tmp_path, "empty.jsonl", "\n\n"))
    one = write(tmp_path, "one.jsonl", jsonl({"text": "a", "label": "pos"}, {"text": "b", "label": "pos"}))
    with pytest.raises(InputError, match="at least two classes"):
        load_jsonl(one)
    two = write(tmp_path, "two.jsonl", jsonl({"text": "a", "label": "positive"}, {"text": "b", "label": "postive"}))
    with pytest.raises(InputError, match=r"two\.jsonl:2: field 'label' has unknown value 'postive'"):
        load_jsonl(two, labels=["positive", "negative"])


def test_bad_utf8_reports_line(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    with pytest.raises(InputError, match=r"latin\.jsonl:2: not valid UTF-8"):
        load_jsonl(p)


def test_csv_loads_and_reports_physical_lines(tmp_path):
    p = write(tmp_path, "d.csv", 'text,label\n"good, really",positive\n\nbad,negative\n')
    ex = load_csv(p)
    assert ex == [{"text": "good, really", "label": "positive"}, {"text": "bad", "label": "negative"}]
    assert ex.report.n_blank_skipped == 1
    bad = write(tmp_path, "bad.csv", "instruction,input,output\nSay hi,,Hi\nAdd,2\n")
    with pytest.raises(InputError, match=r"bad\.csv:3: has 2 fields but the header has 3"):
        load_csv(bad)
    miss = write(tmp_path, "miss.csv", "instruction,input\nSay hi,\n")
    with pytest.raises(InputError, match=r"miss\.csv:2: field 'output' missing"):
        load_csv(miss)
    with pytest.raises(InputError, match="header but no examples"):
        load_csv(write(tmp_path, "hdr.csv", "text,label\n"))
    with pytest.raises(InputError, match="at least two classes"):
        load_csv(write(tmp_path, "one.csv", "text,label\na,x\nb,x\n"))


def test_load_text_splits_on_blank_lines(tmp_path):
    p = write(tmp_path, "doc.txt", "first line\nsecond line\n\n\nnext doc\n")
    docs = load_text(p)
    assert docs == [{"text": "first line\nsecond line"}, {"text": "next doc"}]
    assert docs.report.n_blank_skipped == 2
    with pytest.raises(InputError, match="no text"):
        load_text(write(tmp_path, "blank.txt", "\n \n"))
    assert load_examples(p) == docs


def test_export_roundtrip_and_check_examples(tmp_path):
    examples = [{"instruction": "Name a colour.", "input": "", "output": "Red. ✓"},
                {"instruction": "Echo", "input": "x", "output": "x"}]
    path = tmp_path / "sub" / "out.jsonl"
    assert export_jsonl(examples, path) == 2
    assert load_jsonl(path) == examples
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"]  # no temporary file left behind
    assert check_examples(examples).report.kind == "instruction"
    with pytest.raises(InputError, match=r"mine\[1\]: field 'output' missing"):
        check_examples([examples[0], {"instruction": "x"}], source="mine")


def test_conversations_load_and_bad_ones_name_the_line_and_the_message(tmp_path):
    talk = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello.", "name": "bot"}]
    ex = load_jsonl(write(tmp_path, "chat.jsonl", jsonl({"messages": talk, "id": 1})))
    assert ex.report.kind == "chat" and ex.report.ignored_fields == ["id"]
    assert ex == [{"messages": [{k: m[k] for k in ("role", "content")} for m in talk]}]
    bad = [
        ({"messages": []}, "field 'messages' must be a non-empty list"),
        ({"messages": "Hi"}, "field 'messages' must be a non-empty list"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0]: field 'role' must be one of"),
        ({"messages": [{"role": "user", "content": ""}]}, "messages[0]: field 'content' must be a non-empty"),
        ({"messages": [talk[1], talk[0], talk[2]]}, "messages[1]: a system message may only come first"),
        ({"messages": talk[:2]}, "the last message must be the assistant's"),
        ({"messages": [talk[0], talk[2]]}, "needs at least one user message"),
        ({"messages": ["Hi"]}, "messages[0] is not an object"),
    ]
    for record, needle in bad:
        with pytest.raises(InputError) as e:
            load_jsonl(write(tmp_path, "bad.jsonl", jsonl({"messages": talk}, record)))
        assert str(e.value).startswith("bad.jsonl:2:") and needle in str(e.value), (record, str(e.value))
    with pytest.raises(InputError, match="need JSONL"):
        load_csv(write(tmp_path, "chat.csv", "messages\nhello\n"))
