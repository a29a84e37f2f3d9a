"""The AI domain's decisions as plain functions: what a document is cut to, what a classification
depends on, which model calls go to, which action-item owners are kept."""

from sunny_pipelines.ai.catalogue import choose_model
from sunny_pipelines.ai.documents import classification_prompt, cut, input_hash
from sunny_pipelines.ai.summaries import ActionItem, SummaryAnswer, keep_named_owners


def test_a_long_document_is_cut_on_a_paragraph_line_or_word_boundary():
    text = "Agenda\n\n1. Budget review\n2. Hiring plan " + "detail " * 50
    short, was_cut = cut(text, limit=60)
    assert was_cut and short == "Agenda\n\n1. Budget review\n2. Hiring plan detail detail"[: len(short)]
    assert text.startswith(short) and len(short) <= 60 and not short.endswith(" ")
    assert cut("short", limit=60) == ("short", False)
    prompt = classification_prompt("drive", "Board agenda", "x " * 10_000)
    assert "[the document continues" in prompt and prompt.startswith("Kind: drive\nTitle: Board agenda")


def test_a_classification_depends_on_the_title_and_the_text():
    assert input_hash("Invoice 1042", "Total 200 EUR") == input_hash("Invoice 1042", "Total 200 EUR")
    assert input_hash("Invoice 1042", "Total 200 EUR") != input_hash("Invoice 1043", "Total 200 EUR")
    assert input_hash("Invoice 1042", "Total 200 EUR") != input_hash("Invoice 1042", "Total 300 EUR")


def test_calls_go_to_the_configured_model_while_it_is_listed_else_the_fallback():
    assert choose_model({"gpt-4o-mini", "gpt-4o"}, "gpt-4o-mini", "gpt-4o") == "gpt-4o-mini"
    assert choose_model({"gpt-4o"}, "gpt-4o-mini", "gpt-4o") == "gpt-4o"
    assert choose_model({"o3"}, "gpt-4o-mini", "gpt-4o") is None


def test_action_item_owners_are_kept_only_as_the_transcript_names_them():
    answer = SummaryAnswer(
        summary="Budget agreed.",
        decisions=["Ship in March"],
        action_items=[
            ActionItem(description="Send the deck", owner="Grace Hopper"),
            ActionItem(description="Book the room", owner="Someone Invented"),
            ActionItem(description="Follow up", owner=None),
        ],
    )
    kept = keep_named_owners(answer, {"Grace Hopper", "Alan Turing"})
    assert [item["owner"] for item in kept] == ["Grace Hopper", None, None]
