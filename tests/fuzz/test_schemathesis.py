"""Schemathesis against the running system: the gateway's OpenAPI and each internal service's.

Every operation gets its schema's examples and fuzzed requests, and the stateful phase chains operations
along the links schemathesis infers between them (an id a response returns, used in the next request's
path). Each response must pass two checks: ``not_a_server_error`` (no 5xx, ever) and
``response_schema_conformance`` (the body is what the OpenAPI says). The run is bounded (a few examples
per operation, short scenarios) and deterministic (seeded).

Fuzzed values rarely name anything that exists, so path parameters are sometimes set to the seeded
objects' ids, and bodies sometimes to one that succeeds (a real photo, real pixels, a matcher search of a
real index, a comment on the seeded encounter...): a share of the requests reaches each operation's
success path, not only its 404 or 422, and the test says how many operations answered 2xx.
"""

from __future__ import annotations

import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.transport.serialization import Binary

from finprint_testing.system import RunningSystem
from tests.fuzz.conftest import SEED, Seeds, load_schema

pytestmark = [pytest.mark.servers, pytest.mark.slow]

CHECKS = [not_a_server_error, response_schema_conformance]

# Bounded: 10 fuzzed requests per operation and 25 scenarios of up to 6 steps per service. A longer
# exploratory run: FINPRINT_FUZZ_EXAMPLES=200 FINPRINT_FUZZ_SCENARIOS=200.
FUZZ_SETTINGS = hypothesis.settings(
    # Deterministic by @hypothesis.seed(SEED) below (derandomize would ignore it).
    max_examples=int(os.environ.get("FINPRINT_FUZZ_EXAMPLES", "10")), deadline=None, derandomize=False,
    database=None, suppress_health_check=list(HealthCheck),
    # No shrinking: a failure is reported as found (schemathesis prints the request to replay it), and the
    # run stays bounded.
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
EXAMPLE_SETTINGS = hypothesis.settings(FUZZ_SETTINGS, max_examples=3)  # with and without the seeded ids
# A state machine takes no seed: its scenarios are derandomised (FINPRINT_FUZZ_SEED leaves them as they are).
STATEFUL_SETTINGS = hypothesis.settings(
    FUZZ_SETTINGS, max_examples=int(os.environ.get("FINPRINT_FUZZ_SCENARIOS", "25")), stateful_step_count=6,
    derandomize=True)


def _sometimes(generated: Any, seeded: Any) -> st.SearchStrategy:
    return st.sampled_from([generated, seeded])


class Tally:
    """The status codes each operation answered, to show the run reached success paths."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[int]] = {}

    def record(self, label: str, status: int) -> None:
        self.statuses.setdefault(label, []).append(status)

    def succeeded(self) -> set[str]:
        return {label for label, codes in self.statuses.items() if any(200 <= c < 300 for c in codes)}

    def requests(self) -> int:
        return sum(len(codes) for codes in self.statuses.values())


def _seeded_schema(system: RunningSystem, service: str, seeds: Seeds) -> schemathesis.BaseSchema:
    headers = {"X-API-Key": seeds.admin_key} if service == "gateway" else None
    schema = load_schema(system.urls[service], headers)
    known = seeds.path_values.get(service, {})
    schema.tally = Tally()  # type: ignore[attr-defined]

    @schema.hook
    def after_call(context: Any, case: schemathesis.Case, response: Any) -> None:
        schema.tally.record(case.operation.label, response.status_code)  # type: ignore[attr-defined]

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy:
        if not path_parameters:
            return st.just(path_parameters)
        # All of them at once: an id of the seeded organisation is found only under that organisation.
        return _sometimes(path_parameters, {name: known.get(name, value) for name, value in path_parameters.items()})

    bodies = seeds.bodies.get(service, {})

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
        operation = context.operation
        seeded = bodies.get((operation.method.upper(), operation.path))
        return _sometimes(body, _binary(seeded) if seeded is not None else _seeded_body(operation.path, body, seeds))

    return schema


def _binary(body: Any) -> Any:
    """A seeded body with its bytes as schemathesis sends binary parts."""
    if isinstance(body, bytes):
        return Binary(body)
    if isinstance(body, dict):
        return {name: _binary(value) for name, value in body.items()}
    if isinstance(body, list):
        return [_binary(value) for value in body]
    return body


def _seeded_body(path: str, body: Any, seeds: Seeds) -> Any:
    """The fuzzed body with what makes it succeed: a real photo, real pixels, a real index and vector."""
    photo = Binary(seeds.photo)
    if path.endswith("/pixels"):
        return Binary(seeds.pixels_npy)
    if isinstance(body, bytes | Binary):
        return photo
    if isinstance(body, dict) and "image" in body:
        return {**body, "image": photo}
    if isinstance(body, dict) and "images" in body:
        return {**body, "images": [photo]}
    if path == "/v1/search":
        return {**seeds.index_key, "queries": [seeds.vector], "k": 5}
    if path == "/v1/duplicates":
        return {**seeds.index_key}
    return body


def _protect_the_fuzzers_key(case: schemathesis.Case, seeds: Seeds) -> None:
    """Revoking the key the run authenticates with would turn every later request into a 401."""
    if case.path_parameters and case.path_parameters.get("key_id") == seeds.admin_key_id:
        case.path_parameters["key_id"] = seeds.spare_key_id


@pytest.fixture(scope="module")
def gateway_schema(fuzzed_system: tuple[RunningSystem, str], seeds: Seeds) -> schemathesis.BaseSchema:
    return _seeded_schema(fuzzed_system[0], "gateway", seeds)


@pytest.fixture(scope="module")
def catalog_schema(fuzzed_system: tuple[RunningSystem, str], seeds: Seeds) -> schemathesis.BaseSchema:
    return _seeded_schema(fuzzed_system[0], "catalog", seeds)


@pytest.fixture(scope="module")
def matcher_schema(fuzzed_system: tuple[RunningSystem, str], seeds: Seeds) -> schemathesis.BaseSchema:
    return _seeded_schema(fuzzed_system[0], "matcher", seeds)


@pytest.fixture(scope="module")
def detector_schema(fuzzed_system: tuple[RunningSystem, str], seeds: Seeds) -> schemathesis.BaseSchema:
    return _seeded_schema(fuzzed_system[0], "detector", seeds)


@pytest.fixture(scope="module")
def embedder_schema(fuzzed_system: tuple[RunningSystem, str], seeds: Seeds) -> schemathesis.BaseSchema:
    return _seeded_schema(fuzzed_system[0], "embedder", seeds)


def _run(strategy: st.SearchStrategy, settings: hypothesis.settings, seeds: Seeds) -> None:
    @hypothesis.seed(SEED)
    @settings
    @hypothesis.given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        _protect_the_fuzzers_key(case, seeds)
        case.call_and_validate(checks=CHECKS)

    call()


def _failures_of(operation: Any, seeds: Seeds) -> list[str]:
    """The examples phase (each example of the schema once), then the fuzzing phase (valid and invalid data)."""
    failures = []
    for example in operation.get_strategies_from_examples():
        try:
            _run(example, EXAMPLE_SETTINGS, seeds)
        except Exception as exc:  # noqa: BLE001 - every failure of every operation is reported together
            failures.append(f"{operation.label} (example): {exc}")
    fuzzed = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    try:
        _run(fuzzed, FUZZ_SETTINGS, seeds)
    except Exception as exc:  # noqa: BLE001 - as above
        failures.append(f"{operation.label} (fuzzing): {exc}")
    return failures


# The least share of operations that must answer 2xx at least once (the seeding is what makes it possible;
# e.g. the embedder's two routes both answer 2xx only for a real photo or real pixels).
SUCCESS_SHARE = {"gateway_schema": 0.75, "catalog_schema": 0.7, "matcher_schema": 0.8, "detector_schema": 0.8,
                 "embedder_schema": 0.8}


# The gateway goes first: the internal services' runs change the seeded catalogue under it.
@pytest.mark.parametrize("fixture", ["gateway_schema", "catalog_schema", "matcher_schema", "detector_schema",
                                     "embedder_schema"])
def test_every_operation(fixture: str, request: pytest.FixtureRequest, seeds: Seeds) -> None:
    schema: schemathesis.BaseSchema = request.getfixturevalue(fixture)
    # Deletions last, so that the seeded objects they may delete serve every other operation first.
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.method == "delete")
    failures = [failure for operation in operations for failure in _failures_of(operation, seeds)]
    assert operations and not failures, "\n\n".join(failures)
    tally: Tally = schema.tally  # type: ignore[attr-defined]
    succeeded = tally.succeeded()
    print(f"{fixture}: {len(operations)} operations, {tally.requests()} requests, {len(succeeded)} with a 2xx; "
          f"never 2xx: {sorted(set(tally.statuses) - succeeded)}")
    assert len(succeeded) >= len(operations) * SUCCESS_SHARE[fixture], sorted(set(tally.statuses) - succeeded)


@pytest.mark.parametrize("fixture", ["gateway_schema", "catalog_schema", "matcher_schema"])
def test_stateful_scenarios(fixture: str, request: pytest.FixtureRequest, seeds: Seeds) -> None:
    """Chains along the inferred links (the detector and the embedder have none: they keep no state)."""
    schema: schemathesis.BaseSchema = request.getfixturevalue(fixture)
    machine = schema.as_state_machine()

    steps: list[tuple[str, int]] = []
    check_failures: list[str] = []

    class Scenarios(machine):  # type: ignore[valid-type, misc]
        def before_call(self, case: schemathesis.Case) -> None:
            _protect_the_fuzzers_key(case, seeds)

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            steps.append((case.operation.label, response.status_code))

        def validate_response(self, response: Any, case: schemathesis.Case, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)
            except Exception as failure:
                check_failures.append(f"{case.operation.label}: {failure}")
                raise

    try:
        Scenarios.run(settings=STATEFUL_SETTINGS)
    except hypothesis.errors.Flaky:
        # The servers keep state between scenarios, so a replayed scenario can draw differently and
        # hypothesis calls its own strategy flaky. Like schemathesis' own stateful engine, count that as
        # a pass unless a check failed on the way; a real check failure is reported below either way.
        pass
    assert not check_failures, "\n\n".join(check_failures)
    links = schema.statistic.transitions.total
    chained = {label for label, status in steps if 200 <= status < 300}
    print(f"{fixture}: {links} inferred links, {len(steps)} steps, {len(chained)} operations with a 2xx in scenarios")
    assert links > 0 and len(chained) >= 3, steps
