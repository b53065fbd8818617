"""pixel-relay: GTM image-tag hits to SQS to Amazon Pinpoint and its successors."""
