"""The mock sending API as a real server: auth, bodies, every fault mode, the received log."""

import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from mock import server
from mock.auth import DEMO_SECRET, demo_token
from mock.faults import Faults
from notifyctl.config import DEMO_SENDER_TOKEN
from tests.servers import running

AUTH = {"Authorization": f"Bearer {demo_token()}"}
JSON_TYPE = "application/json"


def sign(claims: dict, secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def body(msg_id=1, phone=79161234567, text="Hello"):
    return {"id": msg_id, "phone": phone, "text": text}


@pytest.fixture
def mock_url():
    with running(server.config(seed=1)) as url:
        yield url


@pytest.fixture
def client(mock_url):
    with httpx.Client(base_url=mock_url, timeout=5) as client:
        yield client


def faults(client, **changes):
    response = client.put("/v1/_faults", json=changes, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def test_demo_token_in_notifyctl_settings_is_the_mocks():
    assert demo_token() == DEMO_SENDER_TOKEN


def test_valid_request_is_accepted_and_logged(client):
    response = client.post("/v1/send/7", json=body(7), headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"code": 0, "message": "OK"})
    log = client.get("/v1/_received", headers=AUTH).json()
    assert log["total"] == 1
    item = log["items"][0]
    assert (item["msg_id"], item["phone"], item["text"], item["count"]) == (
        7,
        79161234567,
        "Hello",
        1,
    )
    arrived = datetime.fromisoformat(item["first_at"])
    assert abs(arrived - datetime.now(UTC)) < timedelta(seconds=5)


def test_repeated_ids_are_counted_with_first_and_last_arrival(client):
    for _ in range(3):
        client.post("/v1/send/5", json=body(5), headers=AUTH)
    client.post("/v1/send/6", json=body(6), headers=AUTH)
    one = client.get("/v1/_received", params={"msg_id": 5}, headers=AUTH).json()
    assert (one["total"], one["items"][0]["count"]) == (1, 3)
    assert one["items"][0]["last_at"] >= one["items"][0]["first_at"]
    page = client.get("/v1/_received", params={"limit": 1, "offset": 1}, headers=AUTH).json()
    assert (page["total"], [i["msg_id"] for i in page["items"]]) == (2, [6])


@pytest.mark.clock
@pytest.mark.parametrize(
    "header",
    [
        None,
        "Basic abc",
        "Bearer not-a-jwt",
        f"Bearer {sign({'sub': 'x'}, 'another-secret-of-at-least-32-bytes!')}",
        f"Bearer {sign({'sub': 'x', 'exp': int(time.time()) - 10}, DEMO_SECRET)}",
    ],
    ids=["missing", "not-bearer", "malformed", "wrong-signature", "expired"],
)
def test_bad_tokens_get_401_and_nothing_is_logged(client, header):
    headers = {"Authorization": header} if header else {}
    assert client.post("/v1/send/1", json=body(), headers=headers).status_code == 401
    assert client.get("/v1/_received", headers=AUTH).json()["total"] == 0


def test_control_routes_need_the_token(client):
    assert client.get("/v1/_received").status_code == 401
    assert client.get("/v1/_faults").status_code == 401
    assert client.put("/v1/_faults", json={"error_rate": 1}).status_code == 401


def test_a_real_secret_retires_the_demo_token():
    with running(server.config(secret="a-real-secret-of-at-least-32-bytes")) as url:
        token = jwt.encode({"sub": "prod"}, "a-real-secret-of-at-least-32-bytes", algorithm="HS256")
        demo = httpx.post(f"{url}/v1/send/1", json=body(), headers=AUTH)
        real = httpx.post(
            f"{url}/v1/send/1", json=body(), headers={"Authorization": f"Bearer {token}"}
        )
    assert (demo.status_code, real.status_code) == (401, 200)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (body(msg_id=2), "differs"),
        ({"id": 1, "phone": "79161234567", "text": "x"}, "phone"),
        ({"id": 1, "phone": 79161234567}, "text"),
        ([1, 2], "object"),
    ],
)
def test_malformed_bodies_get_400_with_a_reason(client, payload, reason):
    response = client.post("/v1/send/1", json=payload, headers=AUTH)
    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_non_json_body_gets_400(client):
    response = client.post("/v1/send/1", content=b"{oops", headers=AUTH)
    assert (response.status_code, response.json()["detail"]) == (400, "body is not JSON")


def test_error_rate_answers_5xx(client):
    faults(client, error_rate=1.0)
    codes = {
        client.post(f"/v1/send/{i}", json=body(i), headers=AUTH).status_code for i in range(20)
    }
    assert codes <= {500, 502, 503}
    assert len(codes) > 1


def test_garbage_rate_answers_200_with_a_body_that_is_not_ok(client):
    faults(client, garbage_rate=1.0)
    for i in range(10):
        response = client.post(f"/v1/send/{i}", json=body(i), headers=AUTH)
        assert response.status_code == 200
        assert response.content != b'{"code":0,"message":"OK"}'


def test_drop_rate_closes_the_connection_without_an_answer(client):
    faults(client, drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/send/1", json=body(), headers=AUTH)
    faults(client, drop_rate=0.0)
    assert client.post("/v1/send/2", json=body(2), headers=AUTH).status_code == 200


def test_latency_and_jitter_delay_the_answer(client):
    faults(client, latency_ms=200, jitter_ms=50)
    started = time.perf_counter()
    client.post("/v1/send/1", json=body(), headers=AUTH)
    assert 0.2 <= time.perf_counter() - started < 1.0


def test_a_sender_that_gives_up_during_latency_is_not_logged(client):
    faults(client, latency_ms=500)
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/send/1", json=body(), headers=AUTH, timeout=0.1)
    time.sleep(0.6)
    assert client.get("/v1/_received", headers=AUTH).json()["total"] == 0


def test_rate_limit_answers_429_with_retry_after(client):
    faults(client, rate_limit=5)
    answers = [client.post(f"/v1/send/{i}", json=body(i), headers=AUTH) for i in range(12)]
    limited = [a for a in answers if a.status_code == 429]
    assert 5 <= len(limited) <= 8
    assert limited[0].headers["Retry-After"] == "1"


def test_outage_refuses_everything_for_its_duration(client):
    faults(client, outage_seconds=0.5)
    assert client.post("/v1/send/1", json=body(), headers=AUTH).status_code == 503
    time.sleep(0.6)
    assert client.post("/v1/send/1", json=body(), headers=AUTH).status_code == 200


@pytest.mark.clock
def test_outage_can_be_scheduled_for_later(client):
    start = datetime.now(UTC) + timedelta(seconds=0.4)
    # Long enough that a slow machine's next request still lands inside it.
    shown = faults(client, outage_seconds=5, outage_at=start.isoformat())
    assert shown["outage_seconds"] == 5
    assert client.post("/v1/send/1", json=body(), headers=AUTH).status_code == 200
    time.sleep(0.5)
    assert client.post("/v1/send/2", json=body(2), headers=AUTH).status_code == 503


def test_faults_change_at_run_time_and_are_shown(client):
    shown = faults(client, latency_ms=5, error_rate=0.25)
    assert (shown["latency_ms"], shown["error_rate"], shown["drop_rate"]) == (5, 0.25, 0)
    again = client.get("/v1/_faults", headers=AUTH).json()
    assert again == shown


@pytest.mark.parametrize("change", [{"error_rate": 1.5}, {"latency_ms": -1}, {"bogus": 1}])
def test_invalid_fault_changes_are_refused_and_change_nothing(client, change):
    response = client.put("/v1/_faults", json=change, headers=AUTH)
    assert response.status_code == 422
    assert client.get("/v1/_faults", headers=AUTH).json()["error_rate"] == 0


def test_startup_faults_are_in_force():
    with running(server.config(faults=Faults(error_rate=1.0))) as url:
        response = httpx.post(f"{url}/v1/send/1", json=body(), headers=AUTH)
    assert response.status_code in (500, 502, 503)


def test_received_log_stays_small_with_many_entries():
    from mock.received import ReceivedLog

    log = ReceivedLog()
    for msg_id in range(100_000):
        log.record(msg_id, 79000000000 + msg_id, "same text", at=1.0, accepted=True)
    assert len(log._text_list) == 1
    assert log.page(msg_id=99_999, limit=1, offset=0)["items"][0]["phone"] == 79000099999


def test_cli_prints_the_demo_token_and_refuses_bad_faults():
    from typer.testing import CliRunner

    from notifyctl.cli import app

    runner = CliRunner()
    printed = runner.invoke(app, ["mock", "--print-token"])
    assert printed.stdout.strip() == demo_token()
    bad = runner.invoke(app, ["mock", "--error-rate", "2"])
    assert (bad.exit_code, bad.stderr.startswith("error: --error-rate:")) == (2, True)
    helped = runner.invoke(app, ["mock", "--help"])
    for option in (
        "--latency-ms",
        "--jitter-ms",
        "--error-rate",
        "--garbage-rate",
        "--drop-rate",
        "--rate-limit",
        "--outage-seconds",
        "--print-token",
    ):
        assert option in helped.stdout


def test_the_id_index_finds_every_id_it_was_given():
    import random

    from mock.received import IdIndex

    index = IdIndex(capacity=4)
    dice = random.Random(5)
    keys = [*dice.sample(range(1, 2**40), 10_000), *dice.sample(range(-(2**40), -1), 10_000)]
    keys += [0, -1, 2**63 - 1]
    for slot, key in enumerate(keys):
        index.put(key, slot)
    assert all(index.get(key) == slot for slot, key in enumerate(keys))
    assert index.get(12345678901234) is None


def test_an_id_beyond_64_bits_is_a_400(client):
    huge = 2**64
    response = client.post(f"/v1/send/{huge}", json=body(huge), headers=AUTH)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "raw",
    [
        b'{"error_rate": NaN}',
        b'{"latency_ms": NaN}',
        b'{"latency_ms": Infinity}',
        b'{"jitter_ms": 1e300}',
        b'{"rate_limit": Infinity}',
        b'{"retry_after": -Infinity}',
        b'{"outage_seconds": 1e300}',
        b'{"drop_rate": -0.5}',
        b'{"garbage_rate": 2}',
        b'{"outage_at": "0001-01-01T00:00:00+05:00", "outage_seconds": 5}',
        b'{"outage_at": "9999-12-31T23:59:59-05:00", "outage_seconds": 5}',
        b'{"\\ud800": 1}',
    ],
)
def test_faults_that_are_no_numbers_or_out_of_bounds_are_a_422(client, raw):
    before = client.get("/v1/_faults", headers=AUTH).json()
    answer = client.put("/v1/_faults", content=raw, headers=AUTH | {"Content-Type": JSON_TYPE})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][0] == "body"
    assert client.get("/v1/_faults", headers=AUTH).json() == before


def test_a_text_with_a_lone_surrogate_is_a_400_and_the_log_stays_readable(client):
    raw = b'{"id": 1, "phone": 79161234567, "text": "a\\ud800"}'
    answer = client.post("/v1/send/1", content=raw, headers=AUTH)
    assert (answer.status_code, "surrogate" in answer.json()["detail"]) == (400, True)
    assert client.get("/v1/_received", headers=AUTH).status_code == 200
