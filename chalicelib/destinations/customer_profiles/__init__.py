"""Amazon Connect Customer Profiles: each event recorded as one profile object."""

from chalicelib.destinations.customer_profiles.delivery import SPEC as SPEC
