"""The error tree: drawn once (streams/errors.py), true to the classes, each raised where it says.

``RAISED_BY`` names, for every class in the tree that is ever raised, the tests
that raise it where its docstring says; the tests below check that map against
the tree, so a new error class without a test fails here. The raise tests that
no other file holds are at the end of this file.
"""

from __future__ import annotations

import ast
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)
from confluent_kafka import KafkaError
from faust.exceptions import ProducerSendError

import export.errors
import models.errors
import streams.errors
from models.errors import ModelPackageError, ProviderError, ReviewPulseError
from models.package import ModelPackage
from models.runtime import choose_providers, create_session
from models.scorer import Scores
from streams.errors import (
    DeliveryError,
    EventTooLarge,
    KafkaConfigError,
    LocalKafkaError,
    WorkerExited,
    WorkerTimeout,
)
from streams.service.kafka_config import RefusalMonitor
from streams.service.sink import kafka_error
from streams.tools.harness import WorkerProcess
from streams.tools.localkafka import LocalKafka

REPO = Path(__file__).resolve().parents[2]
ERROR_MODULES = (models.errors, export.errors, streams.errors)
SOURCE_PACKAGES = ("streams", "models", "export")
NEVER_RAISED = {"ReviewPulseError", "ModelError"}  # bases: only their subclasses are raised

# class → tests that raise it where its docstring says ("path::test function")
RAISED_BY: dict[str, list[str]] = {
    "ModelPackageError": [
        "tests/unit/test_scorer.py::test_missing_or_bad_manifest_is_a_package_error",
        "tests/unit/test_manifest_digest.py::test_a_manifest_without_its_digest_is_a_package_error",
        "tests/unit/test_errors.py::test_a_model_onnxruntime_cannot_load_is_a_package_error",
        "tests/unit/test_errors.py::test_a_top_label_needs_a_classification_head",
        "tests/unit/test_knowledge.py::"
        "test_a_kb_file_it_cannot_use_is_refused_naming_the_file_and_entry",
    ],
    "ModelLabelsError": [
        "tests/unit/test_labels.py::test_a_review_model_with_other_labels_is_refused",
    ],
    "ModelIntegrityError": [
        "tests/unit/test_scorer.py::test_tampered_model_is_refused",
        "tests/unit/test_manifest_digest.py::test_a_changed_file_hash_in_the_manifest_is_refused",
    ],
    "ProviderError": [
        "tests/unit/test_errors.py::test_a_required_cuda_provider_that_is_missing_is_refused",
    ],
    "ExportError": [
        "tests/export/test_export.py::test_export_arguments_are_validated",
        "tests/export/test_export.py::test_validation_texts_round_trip_through_jsonl",
    ],
    "UnsupportedModelError": [
        "tests/export/test_export.py::test_unsupported_model_type_is_refused_before_any_work",
    ],
    "ParityError": [
        "tests/export/test_export.py::test_tampered_packages_fail_parity_in_a_fresh_process",
    ],
    "QuantizationLossError": [
        "tests/export/test_export.py::test_tampered_packages_fail_parity_in_a_fresh_process",
    ],
    "E5BaseError": [
        "tests/export/test_e5.py::test_dequantize_q4_rejects_partial_blocks",
        "tests/export/test_e5.py::test_tokenizer_requires_xlmr_special_ids",
    ],
    "AdaptError": [
        "tests/export/test_adapt.py::test_read_rated_names_the_bad_line",
    ],
    "NotBetterError": [
        "tests/export/test_adapt.py::test_adapt_writes_nothing_when_not_better",
    ],
    "InvalidEvent": [
        "tests/unit/test_contract.py::test_invalid_reviews_raise_with_reason",
    ],
    "StoreError": [
        "tests/unit/test_store_failures.py::test_bad_queries_stay_plain_store_errors",
        "tests/unit/test_store_failures.py::test_exceptions_are_classified",
    ],
    "StoreUnavailable": [
        "tests/unit/test_store_failures.py::test_server_outage_is_transient",
    ],
    "StoreRejected": [
        "tests/unit/test_store_failures.py::test_values_the_store_cannot_take_are_rejected",
    ],
    "StoreFatal": [
        "tests/unit/test_store_failures.py::test_unknown_tables_and_databases_are_fatal",
        "tests/unit/test_store_failures.py::test_wrong_password_is_fatal_and_never_shown",
    ],
    "DeliveryError": [
        "tests/unit/test_errors.py::test_producer_failures_are_classified",
    ],
    "EventTooLarge": [
        "tests/unit/test_errors.py::test_producer_failures_are_classified",
    ],
    "KafkaConfigError": [
        "tests/unit/test_errors.py::test_producer_failures_are_classified",
        "tests/unit/test_errors.py::test_a_refused_client_is_a_kafka_config_error",
        "tests/integration/test_security.py::test_topics_get_the_configured_replication_settings",
        "tests/integration/test_security.py::"
        "test_wrong_password_fails_fast_and_never_shows_a_password",
    ],
    "TopicSetupError": [
        "tests/unit/test_kafka_security.py::"
        "test_unreachable_broker_error_names_the_servers_not_the_password",
        "tests/integration/test_security.py::test_plaintext_client_cannot_use_the_sasl_listener",
    ],
    "LocalKafkaError": [
        "tests/unit/test_errors.py::test_local_kafka_refuses_a_port_in_use",
        "tests/unit/test_errors.py::test_local_kafka_without_sasl_users_has_no_sasl_listener",
    ],
    "WorkerExited": [
        "tests/unit/test_errors.py::test_the_harness_notices_a_worker_that_exited",
    ],
    "WorkerTimeout": [
        "tests/unit/test_errors.py::test_the_harness_gives_up_on_a_worker_after_the_timeout",
    ],
}

# ├── Name   or   │   └── Name   or the root at column 0
_TREE_LINE = re.compile(r"^(?P<indent>(?:│   |    )*)(?P<branch>[├└]── )?(?P<name>[A-Z]\w+)\b")


def drawn_tree() -> dict[str, str | None]:
    """Class name → parent name, as drawn in the docstring of streams.errors."""
    doc = streams.errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in block.splitlines():
        match = _TREE_LINE.match(line.removeprefix("    "))
        assert match is not None, f"not a tree line: {line!r}"
        depth = len(match["indent"]) // 4 + (1 if match["branch"] else 0)
        del path[depth:]
        parents[match["name"]] = path[-1] if path else None
        path.append(match["name"])
    return parents


def error_classes(module: ModuleType) -> dict[str, type[BaseException]]:
    """The exception classes ``module`` defines (not the ones it imports)."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and issubclass(obj, BaseException)
        and obj.__module__ == module.__name__
    }


def all_error_classes() -> dict[str, type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for module in ERROR_MODULES:
        defined = error_classes(module)
        assert not set(defined) & set(classes), "an error class name is used twice"
        classes.update(defined)
    return classes


def test_every_error_class_descends_from_the_root_and_is_drawn_under_its_parent() -> None:
    classes = all_error_classes()
    drawn = drawn_tree()
    assert set(drawn) == set(classes)
    for name, cls in classes.items():
        assert issubclass(cls, ReviewPulseError), name
        assert len(cls.__bases__) == 1, name
        parent = None if cls is ReviewPulseError else cls.__bases__[0].__name__
        assert drawn[name] == parent, f"{name} is drawn under {drawn[name]}, derives from {parent}"


def test_the_service_exports_its_errors_and_the_models_ones() -> None:
    expected = set(error_classes(models.errors)) | set(error_classes(streams.errors))
    assert set(streams.errors.__all__) == expected


def test_no_other_module_defines_an_exception_class() -> None:
    """An error class outside the three error modules would escape the tree (and this test)."""
    allowed = {REPO / f"{module.__name__.replace('.', '/')}.py" for module in ERROR_MODULES}
    known = set(all_error_classes())
    found = []
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
                if bases & known or any(b.endswith(("Error", "Exception")) for b in bases):
                    found.append(f"{path.relative_to(REPO)}: {node.name}({', '.join(bases)})")
    assert not found


def test_every_raised_error_has_a_test_that_raises_it() -> None:
    assert set(RAISED_BY) == set(drawn_tree()) - NEVER_RAISED
    for name, tests in RAISED_BY.items():
        assert tests, name
        for test in tests:
            file, function = test.split("::")
            source = (REPO / file).read_text(encoding="utf-8")
            nodes = [
                node
                for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.FunctionDef) and node.name == function
            ]
            assert len(nodes) == 1, f"{test} not found"
            decorated = "\n".join(
                ast.get_source_segment(source, n) or "" for n in [*nodes[0].decorator_list]
            )
            body = ast.get_source_segment(source, nodes[0]) or ""
            assert name in decorated + body, f"{test} does not mention {name}"


# --------------------------------------------------------------------------- raise sites


def test_a_required_cuda_provider_that_is_missing_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "models.runtime.ort.get_available_providers", lambda: ["CPUExecutionProvider"]
    )
    with pytest.raises(ProviderError, match="CUDA requested"):
        choose_providers("cuda", strict=True)
    assert choose_providers("cuda") == ["CPUExecutionProvider"]


def test_a_model_onnxruntime_cannot_load_is_a_package_error(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not an onnx graph")
    with pytest.raises(ModelPackageError, match="onnxruntime cannot load it"):
        create_session(model)


def test_a_top_label_needs_a_classification_head(tiny_package: ModelPackage) -> None:
    embeddings_only = Scores(labels=tiny_package.labels, probs=None, embeddings=None)
    with pytest.raises(ModelPackageError, match="no classification head"):
        embeddings_only.top(0)


def _send_error(cause: BaseException) -> ProducerSendError:
    try:
        raise ProducerSendError("Error while sending") from cause
    except ProducerSendError as error:
        return error


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (_send_error(MessageSizeTooLargeError()), EventTooLarge),
        (_send_error(TopicAuthorizationFailedError()), KafkaConfigError),
        (_send_error(KafkaTimeoutError()), DeliveryError),
        (ConnectionResetError("reset by peer"), DeliveryError),
        (EventTooLarge("kept"), EventTooLarge),
    ],
)
def test_producer_failures_are_classified(
    failure: BaseException, expected: type[ReviewPulseError]
) -> None:
    error = kafka_error(failure)
    assert type(error) is expected
    with pytest.raises(expected):
        raise error


def test_a_refused_client_is_a_kafka_config_error() -> None:
    monitor = RefusalMonitor("broker:9093")
    monitor(KafkaError(KafkaError._TRANSPORT, "broker down"))  # transient: not a refusal
    monitor.check()
    monitor(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED, "Authentication failed"))
    with pytest.raises(KafkaConfigError, match=r"broker:9093 refused this client"):
        monitor.check()


def test_local_kafka_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        kafka = LocalKafka(home=tmp_path, port=port, controller_port=port)
        with pytest.raises(LocalKafkaError, match=f"127.0.0.1:{port} is already in use"):
            kafka.start(timeout_s=1)
    assert not (tmp_path / "jars").exists()  # refused before fetching or starting anything


def test_local_kafka_without_sasl_users_has_no_sasl_listener(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError, match="no SASL listener"):
        _ = LocalKafka(home=tmp_path).sasl_bootstrap_servers


def _worker(tmp_path: Path, code: str) -> WorkerProcess:
    """A WorkerProcess around a stand-in child process (no worker, no broker)."""
    worker = WorkerProcess.__new__(WorkerProcess)
    worker.log_path = tmp_path / "worker.log"
    worker.log_path.write_text("the worker's last words\n")
    worker.proc = subprocess.Popen([sys.executable, "-c", code])
    return worker


def test_the_harness_notices_a_worker_that_exited(tmp_path: Path) -> None:
    worker = _worker(tmp_path, "raise SystemExit(3)")
    worker.proc.wait(30)
    with pytest.raises(WorkerExited, match=r"worker exited \(3\)(.|\n)*last words"):
        worker.wait_until(lambda: False, timeout_s=30, what="ready")


def test_the_harness_gives_up_on_a_worker_after_the_timeout(tmp_path: Path) -> None:
    worker = _worker(tmp_path, "import time; time.sleep(60)")
    try:
        with pytest.raises(WorkerTimeout, match="worker not ready after"):
            worker.wait_until(lambda: False, timeout_s=0.3, what="ready", poll_s=0.05)
    finally:
        worker.proc.kill()
        worker.proc.wait(30)
