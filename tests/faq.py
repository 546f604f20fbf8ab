"""A small FAQ knowledge-base file for the tests: its cancel-order entry's id is the caller's."""

from __future__ import annotations

CANCEL = "How do I cancel my order?"  # answered from the cancel-order entry


def kb_yaml(cancel_id: str, answer: str = "Open 'My orders' and press Cancel.") -> str:
    return f"""\
format: 1
language: en
entries:
  - id: {cancel_id}
    intent: cancel_order
    questions:
      - How can I cancel an order?
      - I want to cancel my purchase
    answer: {answer}
  - id: refund
    intent: get_refund
    questions:
      - How do I get a refund?
    answer: Refunds reach your card within 5 days.
  - id: zh-refund
    language: zh
    intent: get_refund
    questions: [我要退款]
    answer: 退款会在5天内退回原支付账户。
"""
