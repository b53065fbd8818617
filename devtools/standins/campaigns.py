"""A local stand-in for Amazon Connect outbound campaigns (connectcampaignsv2), for tests and
`make dev`: what a Customer Profiles event trigger starts.

moto does not implement connectcampaignsv2, so this small HTTP server speaks the two
operations the chain needs, over rest-json with botocore's model for paths and shapes:

- `DescribeCampaign` (`GET /v2/campaigns/{id}`): what `make profiles-setup` may read back;
- `PutProfileOutboundRequestBatch` (`PUT /v2/campaigns/{id}/profile-outbound-requests`),
  which "may be invoked only by Customer Profiles event triggers" (the API reference): the
  Customer Profiles stand-in calls it when a trigger linked to the campaign fires. Any other
  caller is refused 403; so is a campaign whose source is not an event trigger (409).

Every request is checked against AWS's rules (`devtools.standins.strict`: at most 20
requests a call, the profile id's and client token's patterns, ...). A request repeated
with its client token reaches the profile once ("This API is idempotent"). Campaigns are
created with `add_campaign` (an instance, a flow, channels and a schedule are Connect's
business, not the chain's); each accepted outbound request is recorded: "campaign X would
reach profile Y". Standard library and botocore only.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from devtools.loopback import QuietServer, ServiceServer
from devtools.standins import base
from devtools.standins.base import (
    JsonObject,
    RequestError,
    RestJsonHandler,
    Route,
    StandIn,
    json_object,
)

SERVICE: Final = "connectcampaignsv2"
# The access key the Customer Profiles stand-in signs with: only it may start a campaign,
# as only Customer Profiles event triggers may call PutProfileOutboundRequestBatch.
CUSTOMER_PROFILES_KEY: Final = "CUSTOMERPROFILESSTANDIN"
ERROR_TYPES: Final[dict[int, str]] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    409: "ConflictException",
    429: "ThrottlingException",
    500: "InternalServerException",
}
_ROUTES: Final[tuple[Route, ...]] = (
    (
        "PUT",
        re.compile(r"/v2/campaigns/([^/]+)/profile-outbound-requests"),
        "PutProfileOutboundRequestBatch",
    ),
    ("GET", re.compile(r"/v2/campaigns/([^/]+)"), "DescribeCampaign"),
)
_ACCESS_KEY: Final = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class OutboundRequest:
    """One profile a campaign would reach."""

    campaign_arn: str
    campaign_name: str
    profile_id: str
    client_token: str
    request_id: str
    at: float


@dataclass(frozen=True)
class RecordedRequest:
    operation: str
    campaign: str
    body: JsonObject | None
    status: int


@dataclass
class _Campaign:
    arn: str
    name: str
    description: JsonObject
    reached: dict[str, str] = field(default_factory=dict)  # client token -> request id


class CampaignsStandIn(StandIn[RecordedRequest, OutboundRequest]):
    """Connect outbound campaigns over HTTP on loopback, recording each profile reached."""

    _name = "campaigns-standin"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_accept: Callable[[OutboundRequest], None] | None = None,
    ) -> None:
        super().__init__(host, port, on_accept)
        self._campaigns: dict[str, _Campaign] = {}
        self._failures: list[int] = []

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    # Rules

    def add_campaign(
        self,
        arn: str,
        name: str = "",
        domain_arn: str | None = None,
        instance_id: str = "standin-instance",
    ) -> None:
        """A campaign whose source is the event trigger of the Customer Profiles domain
        `domain_arn` (None: a segment, which no trigger may start)."""
        campaign_id = arn.rsplit("/", 1)[-1]
        region, account = arn.split(":")[3:5]
        source: JsonObject = (
            {"eventTrigger": {"customerProfilesDomainArn": domain_arn}}
            if domain_arn is not None
            else {"customerProfilesSegmentArn": arn.rsplit(":", 1)[0] + ":segment/none"}
        )
        shown = name or campaign_id
        description: JsonObject = {
            "id": campaign_id,
            "arn": arn,
            "name": shown,
            "connectInstanceId": instance_id,
            "channelSubtypeConfig": {},
            "source": source,
            # The owner tag AWS asks for, so that the Connect admin website shows it.
            "tags": {"owner": f"arn:aws:connect:{region}:{account}:instance/{instance_id}"},
        }
        with self._lock:
            self._campaigns[campaign_id] = _Campaign(arn, shown, description)

    def fail_next_requests(self, status: int, count: int = 1) -> None:
        """Answer the next `count` requests with the error for `status`."""
        if status not in ERROR_TYPES:
            raise ValueError(f"connectcampaignsv2 declares no error for HTTP {status}")
        with self._lock:
            self._failures.extend([status] * count)

    # Records

    @property
    def outbound_requests(self) -> list[OutboundRequest]:
        """Every profile a campaign would reach, in order (a repeated client token once)."""
        return self._accepted_records()

    # Request handling

    def _answer(
        self, operation: str, campaign_id: str, raw: bytes, access_key: str
    ) -> tuple[int, JsonObject]:
        with self._lock:
            body: JsonObject | None = None
            try:
                body = _parse(raw)
                if self._failures:
                    status = self._failures.pop(0)
                    raise RequestError(status, f"Stand-in failure ({status})")
                params = _params(body) | {"id": campaign_id}
                problems = base.model_problems(SERVICE, operation, params)
                if problems:
                    raise RequestError(400, problems)
                answer = self._handle(operation, campaign_id, body, access_key)
            except RequestError as error:
                self._record(RecordedRequest(operation, campaign_id, body, error.status))
                return error.status, {"message": error.message}
            self._record(RecordedRequest(operation, campaign_id, body, 200))
            return 200, answer

    def _handle(
        self, operation: str, campaign_id: str, body: JsonObject, access_key: str
    ) -> JsonObject:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise RequestError(404, f"Campaign {campaign_id} was not found")
        if operation == "DescribeCampaign":
            return {"campaign": dict(campaign.description)}
        if access_key != CUSTOMER_PROFILES_KEY:
            raise RequestError(
                403,
                "PutProfileOutboundRequestBatch may be invoked only by Customer Profiles"
                " event triggers",
            )
        if "eventTrigger" not in campaign.description["source"]:
            raise RequestError(409, f"Campaign {campaign_id}'s source is not an event trigger")
        successful: list[JsonObject] = []
        for request in body["profileOutboundRequests"]:
            token = str(request["clientToken"])
            request_id = campaign.reached.get(token)
            if request_id is None:
                request_id = str(uuid.uuid4())
                campaign.reached[token] = request_id
                self._accept(
                    OutboundRequest(
                        campaign.arn,
                        campaign.name,
                        str(request["profileId"]),
                        token,
                        request_id,
                        time.time(),
                    )
                )
            successful.append({"clientToken": token, "id": request_id})
        return {"successfulRequests": successful, "failedRequests": []}


def _parse(raw: bytes) -> JsonObject:
    if not raw:
        return {}
    try:
        return json_object(raw)
    except ValueError as error:
        raise RequestError(400, str(error)) from None


def _params(body: JsonObject) -> JsonObject:
    """The body as a boto3 call passes it: rest-json timestamps are epoch seconds."""
    requests = []
    for request in body.get("profileOutboundRequests") or []:
        if isinstance(request, dict) and isinstance(request.get("expirationTime"), int | float):
            request = {
                **request,
                "expirationTime": datetime.fromtimestamp(request["expirationTime"], UTC),
            }
        requests.append(request)
    return (
        {**body, "profileOutboundRequests": requests} if "profileOutboundRequests" in body else body
    )


class _Handler(RestJsonHandler[CampaignsStandIn]):
    server_version = "CampaignsStandIn"

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raw = self.read_body()
        path = urlsplit(self.path).path
        key = _ACCESS_KEY.search(self.headers.get("Authorization", ""))
        routed = self.route(_ROUTES, path)
        if routed is None:
            self.send_unknown_operation(path, "message")
            return
        operation, params = routed
        status, body = self.service._answer(operation, params[0], raw, key.group(1) if key else "")
        self.send_answer(status, body, error_type=ERROR_TYPES.get(status))


def start_campaign(
    url: str, campaign_arn: str, profile_id: str, client_token: str
) -> tuple[bool, str]:
    """What Customer Profiles does when a trigger linked to `campaign_arn` fires: one
    PutProfileOutboundRequestBatch for the profile, by a real boto3 client (so botocore
    checks it too). (reached, why not)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    region = campaign_arn.split(":")[3]
    client: Any = boto3.client(
        SERVICE,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=CUSTOMER_PROFILES_KEY,
        aws_secret_access_key="standin",
        config=Config(retries={"max_attempts": 1}),
    )
    try:
        answer = client.put_profile_outbound_request_batch(
            id=campaign_arn.rsplit("/", 1)[-1],
            profileOutboundRequests=[{"clientToken": client_token, "profileId": profile_id}],
        )
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        message = error.response.get("Error", {}).get("Message", "")
        return False, f"the campaign answered {status}: {message}"
    except BotoCoreError as error:
        return False, f"the campaign could not be reached: {type(error).__name__}"
    failed = answer.get("failedRequests") or []
    if failed:
        return False, f"the campaign refused the profile: {failed[0].get('failureCode')}"
    return True, ""


def client_token(*parts: str) -> str:
    """A client token (at most 200 of [a-zA-Z0-9_-.]) derived from what identifies a start."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)).hex
