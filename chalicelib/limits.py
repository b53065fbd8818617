"""Amazon Pinpoint's quotas, and the few bounds pixel-relay adds of its own.

Pinpoint silently drops an event that breaks some of these quotas (an attribute value over
200 characters, for example), so the pixel checks every one of them before it accepts a hit.
Sources: the Pinpoint quotas page (events and endpoints) and the botocore model for PutEvents.
"""

from typing import Final

# Pinpoint: per event (PutEvents).
EVENT_ATTRIBUTE_AND_METRIC_KEYS: Final = 40
ATTRIBUTE_KEY_LENGTH: Final = 50
EVENT_ATTRIBUTE_VALUE_LENGTH: Final = 200

# Pinpoint: per endpoint and user.
ENDPOINT_ATTRIBUTE_VALUE_LENGTH: Final = 100
VALUES_PER_ATTRIBUTE: Final = 50
ENDPOINT_ATTRIBUTES: Final = 250
ENDPOINT_BYTES: Final = 15 * 1024

# Pinpoint: per PutEvents request.
EVENTS_PER_REQUEST: Final = 100
REQUEST_BYTES: Final = 4 * 1024 * 1024

# pixel-relay's own bounds: identifiers travel in URLs, logs and queue messages, so they are
# kept short and printable. Pinpoint documents no length for these.
EVENT_TYPE_LENGTH: Final = 50
IDENTIFIER_LENGTH: Final = 128
