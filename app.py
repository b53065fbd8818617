"""pixel-relay: the GTM pixel route and the SQS consumer. Logic lives in chalicelib/."""

from typing import TYPE_CHECKING

from chalice.app import Chalice, Response, SQSEvent

from chalicelib import runtime, script
from chalicelib.responses import pixel_middleware

if TYPE_CHECKING:
    from chalicelib.delivery import LambdaAnswer

app = Chalice(app_name="pixel-relay")
# Every response is binary to API Gateway, so the GIF reaches browsers whose Accept starts
# with image/avif or image/webp as an image; error bodies are bytes for the same reason.
app.api.binary_types = ["*/*"]
app.register_middleware(pixel_middleware, "http")

# Chalice imports this module with the stage's environment to deploy, package or run
# locally: a wrong setting stops it there, naming the variable, before anything is deployed.
wiring = runtime.check_configuration().wiring


@app.route("/events", methods=["GET"])
def collect() -> Response:
    request = app.current_request
    assert request is not None  # always set while a route runs
    params = request.query_params
    hit = {} if params is None else {name: params.getlist(name) for name in params}
    return runtime.pixel_service().handle(hit, request.headers)


@app.route("/events", methods=["POST"], content_types=["*/*"])
def collect_beacon() -> Response:
    """sendBeacon's hits, one query string per line (chalicelib/beacon.py). Every content
    type reaches the view, which refuses all but text/plain with a reason (Chalice's own
    415 says none)."""
    request = app.current_request
    assert request is not None
    body = request.raw_body  # decoded from base64 when API Gateway sends it so
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    return runtime.beacon_service().handle(raw, request.headers)


@app.route("/events", methods=["OPTIONS"])
def preflight() -> Response:
    """A fetch() that sets headers of its own asks first; sendBeacon's text/plain does not."""
    request = app.current_request
    assert request is not None
    return runtime.beacon_service().preflight(request.headers)


@app.route("/pixel-relay.js", methods=["GET"])
def relay_script() -> Response:
    """The script the web tag injects to batch its hits (chalicelib/script.py)."""
    request = app.current_request
    assert request is not None
    return script.script_response(request.headers)


@app.on_sqs_message(
    queue=wiring.events_queue,
    batch_size=wiring.batch_size,
    maximum_batching_window_in_seconds=wiring.batching_window_seconds,
    maximum_concurrency=wiring.maximum_concurrency,
)
def deliver(event: SQSEvent) -> "LambdaAnswer":
    from chalicelib.delivery import QueuedMessage  # the pixel never loads the consumer

    messages = [QueuedMessage.from_record(record.to_dict()) for record in event]
    time_left = getattr(event.context, "get_remaining_time_in_millis", None)
    return runtime.batch_delivery().handle(messages, time_left)
