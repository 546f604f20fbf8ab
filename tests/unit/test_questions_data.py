"""The project-written question files: provenance header, labels, sizes, disjoint splits."""

from __future__ import annotations

from collections import Counter

import pytest

from export.errors import ExportError
from export.questions.data import (
    OTHER,
    PROJECT_DATA,
    Question,
    bitext_split,
    check_questions,
    project_questions,
)
from export.questions.kb import chinese_kb, fill_placeholders

INTENTS = [
    "cancel_order",
    "change_order",
    "change_shipping_address",
    "check_cancellation_fee",
    "check_invoice",
    "check_payment_methods",
    "check_refund_policy",
    "complaint",
    "contact_customer_service",
    "contact_human_agent",
    "create_account",
    "delete_account",
    "delivery_options",
    "delivery_period",
    "edit_account",
    "get_invoice",
    "get_refund",
    "newsletter_subscription",
    "payment_issue",
    "place_order",
    "recover_password",
    "registration_problems",
    "review",
    "set_up_shipping_address",
    "switch_account",
    "track_order",
    "track_refund",
]


def test_every_project_file_says_who_wrote_and_labelled_it() -> None:
    for name in ("zh_test.csv", "zh_dev.csv", "zh_train.csv", "en_other.csv", "kb_zh.yaml"):
        head = (PROJECT_DATA / name).read_text(encoding="utf-8")[:400]
        assert "ReviewPulse project" in head, name


def test_chinese_test_set_covers_every_intent_and_out_of_scope() -> None:
    questions = project_questions()
    check_questions(questions, tuple(INTENTS))  # labels known, no text in two splits
    zh_test = Counter(q.intent for q in questions if q.lang == "zh" and q.split == "test")
    assert sum(zh_test.values()) >= 200
    assert set(zh_test) == {*INTENTS, OTHER}
    assert min(zh_test.values()) >= 5


def test_a_question_in_two_splits_is_refused() -> None:
    questions = [
        Question("我要退款", "get_refund", "zh", "project", "train"),
        Question("我要退款！", "get_refund", "zh", "project", "test"),
    ]
    with pytest.raises(ExportError, match="both"):
        check_questions(questions, tuple(INTENTS))


def test_bitext_split_is_deterministic_and_ignores_case_spacing_and_punctuation() -> None:
    assert bitext_split("Cancel my  order!") == bitext_split("cancel my order")
    assert bitext_split("i need help tocancel it") == bitext_split("I need help to cancel it")
    splits = Counter(bitext_split(f"question {i}") for i in range(5000))
    assert 0.07 < splits["test"] / 5000 < 0.13
    assert 0.07 < splits["dev"] / 5000 < 0.13


def test_chinese_kb_has_one_entry_per_intent() -> None:
    entries = chinese_kb()
    assert sorted(e.intent or "" for e in entries) == sorted(INTENTS)
    assert all(e.language == "zh" and e.questions and e.answer for e in entries)


def test_placeholders_are_filled_generically_or_the_response_is_refused() -> None:
    filled = fill_placeholders("Call {{Customer Support Phone Number}} or open {{Order History}}.")
    assert filled == "Call the phone number on our Contact Us page or open 'Order History'."
    assert fill_placeholders("Visit our {{Website Name}}.") == "Visit our website."
    assert fill_placeholders("Order {{Order Number Anonymized}} is on its way.") is None
    assert fill_placeholders("Order 732201349959 is on its way.") is None
