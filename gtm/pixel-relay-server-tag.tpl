___TERMS_OF_SERVICE___

By creating or modifying this file you agree to Google Tag Manager's Community
Template Gallery Developer Terms of Service available at
https://developers.google.com/tag-manager/gallery-tos (or such other URL as
Google may provide), as modified from time to time.


___INFO___

{
  "type": "TAG",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "pixel-relay event (server)",
  "categories": [
    "ANALYTICS",
    "MARKETING"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "pixel-relay"
  },
  "description": "Sends the event a GA4 client claimed to a pixel-relay stage: one line, POST /events, text/plain. Succeeds when the pixel accepted it. See docs/gtm-setup.md.",
  "containerContexts": [
    "SERVER"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "pixelUrl",
    "displayName": "Pixel URL (your stage's API URL followed by events)",
    "simpleValueType": true,
    "help": "For example https://abc123.execute-api.eu-west-1.amazonaws.com/api/events. If the host is not under amazonaws.com (a custom domain), add it to this template's send_http permission.",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^https://[^?#\\s]+/events$"
        ],
        "errorMessage": "An https URL ending with /events, no query string or fragment."
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "endpointIdField",
    "displayName": "Event data field with the endpoint id",
    "simpleValueType": true,
    "defaultValue": "client_id",
    "help": "client_id (the GA4 client id) by default; any event data key, dotted for nested values (user_data.endpoint_id).",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "eventIdField",
    "displayName": "Event data field with a unique event id (optional)",
    "simpleValueType": true,
    "help": "When the site sends one (e.g. event_id), a retried request is recorded once. Empty: the pixel makes an id."
  },
  {
    "type": "SIMPLE_TABLE",
    "name": "attributeParameters",
    "displayName": "Event parameters sent as attributes (evat_)",
    "simpleTableColumns": [
      {
        "defaultValue": "",
        "displayName": "Event data key",
        "name": "key",
        "type": "TEXT",
        "isUnique": true,
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ]
      },
      {
        "defaultValue": "",
        "displayName": "Attribute name (empty: the key)",
        "name": "name",
        "type": "TEXT"
      }
    ],
    "help": "currency and page_location are always sent (evat_currency, evat_page_location) when the event has them."
  },
  {
    "type": "SIMPLE_TABLE",
    "name": "metricParameters",
    "displayName": "Event parameters sent as metrics (evmt_)",
    "simpleTableColumns": [
      {
        "defaultValue": "",
        "displayName": "Event data key",
        "name": "key",
        "type": "TEXT",
        "isUnique": true,
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ]
      },
      {
        "defaultValue": "",
        "displayName": "Metric name (empty: the key)",
        "name": "name",
        "type": "TEXT"
      }
    ],
    "help": "value is always sent (evmt_value) when the event has it."
  },
  {
    "type": "CHECKBOX",
    "name": "forwardBrowserHeaders",
    "checkboxText": "Send the visitor's user_agent as User-Agent and page_location as Referer",
    "simpleValueType": true,
    "defaultValue": true,
    "help": "The pixel's bot filter reads the User-Agent and its page-origin allowlist (ALLOWED_PAGE_ORIGINS) the Referer: with this on they judge the visitor's browser and page, not this server."
  }
]


___SANDBOXED_JS_FOR_SERVER___

// pixel-relay server tag: the GA4 client's event model -> one line -> POST /events.
const encodeUriComponent = require('encodeUriComponent');
const getAllEventData = require('getAllEventData');
const getEventData = require('getEventData');
const getType = require('getType');
const JSON = require('JSON');
const logToConsole = require('logToConsole');
const makeString = require('makeString');
const queryPermission = require('queryPermission');
const sendHttpRequest = require('sendHttpRequest');

const LOG_PREFIX = 'pixel-relay server tag: ';
const TIMEOUT_MILLIS = 5000;
const ATTRIBUTE_LENGTH = 200;  // Pinpoint's limit for an attribute value

function log(message) {
  logToConsole(LOG_PREFIX + message);
}

function isUnset(value) {
  return value === undefined || value === null || value === '';
}

function pair(name, value) {
  return encodeUriComponent(name) + '=' + encodeUriComponent(makeString(value));
}

// A URL cut to Pinpoint's limit rather than the event refused; never half a surrogate pair.
function shortened(text) {
  if (text.length <= ATTRIBUTE_LENGTH) {
    return text;
  }
  let cut = text.substring(0, ATTRIBUTE_LENGTH);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xD800 && last <= 0xDBFF) {
    cut = cut.substring(0, cut.length - 1);
  }
  return cut;
}

function tableRows(table) {
  return getType(table) === 'array' ? table : [];
}

function hitLine(event) {
  const parts = [pair('event', event.event_name), pair('endpoint_id', getEventData(data.endpointIdField))];
  if (data.eventIdField && !isUnset(getEventData(data.eventIdField))) {
    parts.push(pair('event_id', getEventData(data.eventIdField)));
  }
  if (!isUnset(event.value)) {
    parts.push(pair('evmt_value', event.value));
  }
  if (!isUnset(event.currency)) {
    parts.push(pair('evat_currency', event.currency));
  }
  if (!isUnset(event.page_location)) {
    parts.push(pair('evat_page_location', shortened(makeString(event.page_location))));
  }
  const attributes = tableRows(data.attributeParameters);
  for (let i = 0; i < attributes.length; i++) {
    const value = getEventData(attributes[i].key);
    if (value !== undefined && value !== null) {
      parts.push(pair('evat_' + (attributes[i].name || attributes[i].key), value));
    }
  }
  const metrics = tableRows(data.metricParameters);
  for (let i = 0; i < metrics.length; i++) {
    const value = getEventData(metrics[i].key);
    if (!isUnset(value)) {
      parts.push(pair('evmt_' + (metrics[i].name || metrics[i].key), value));
    }
  }
  return parts.join('&');
}

function requestHeaders(event) {
  const headers = {'Content-Type': 'text/plain;charset=UTF-8'};
  if (data.forwardBrowserHeaders) {
    if (!isUnset(event.user_agent)) {
      headers['User-Agent'] = makeString(event.user_agent);
    }
    if (!isUnset(event.page_location)) {
      headers.Referer = makeString(event.page_location);
    }
  }
  return headers;
}

// 200 with {"accepted": 1}: recorded. 200 with a refusal, 413, 503 or anything else: failed,
// with the pixel's reason in the log (Preview's Console tab).
function settle(statusCode, body) {
  const answer = JSON.parse(body || '');
  if (statusCode === 200 && answer && answer.accepted === 1) {
    data.gtmOnSuccess();
    return;
  }
  let reason = 'HTTP ' + statusCode;
  if (answer && getType(answer.refused) === 'array' && answer.refused.length > 0) {
    reason += ', refused: ' + answer.refused[0].reason;
  } else if (answer && getType(answer.unavailable) === 'array' && answer.unavailable.length > 0) {
    reason += ', not queued (retry later)';
  } else if (body) {
    reason += ': ' + makeString(body).substring(0, 200);
  }
  log('event not recorded (' + reason + ')');
  data.gtmOnFailure();
}

function main() {
  const event = getAllEventData();
  const missing = [];
  if (isUnset(data.pixelUrl)) missing.push('Pixel URL');
  if (isUnset(event.event_name)) missing.push('event_name');
  if (isUnset(getEventData(data.endpointIdField))) missing.push(data.endpointIdField);
  if (missing.length > 0) {
    log(missing.join(', ') + ' is empty: nothing sent');
    data.gtmOnFailure();
    return;
  }
  if (!queryPermission('send_http', data.pixelUrl)) {
    log('this template may not send to ' + data.pixelUrl + ': add it to the send_http permission');
    data.gtmOnFailure();
    return;
  }
  const options = {method: 'POST', headers: requestHeaders(event), timeout: TIMEOUT_MILLIS};
  sendHttpRequest(data.pixelUrl, function(statusCode, headers, body) {
    settle(statusCode, body);
  }, options, hitLine(event));
}

main();


___SERVER_PERMISSIONS___

[
  {
    "instance": {
      "key": {
        "publicId": "logging",
        "versionId": "1"
      },
      "param": [
        {
          "key": "environments",
          "value": {
            "type": 1,
            "string": "debug"
          }
        }
      ]
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "read_event_data",
        "versionId": "1"
      },
      "param": [
        {
          "key": "eventDataAccess",
          "value": {
            "type": 1,
            "string": "any"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "send_http",
        "versionId": "1"
      },
      "param": [
        {
          "key": "allowedUrls",
          "value": {
            "type": 1,
            "string": "specific"
          }
        },
        {
          "key": "urls",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "https://*.amazonaws.com/"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  }
]


___TESTS___

scenarios:
- name: maps a GA4 purchase to one encoded line and succeeds when the pixel accepts it
  code: |-
    let request;
    mock('sendHttpRequest', function(url, callback, options, body) {
      request = {url: url, options: options, body: body};
      callback(200, {}, '{"accepted": 1, "refused": []}');
    });
    runCode(mockData);
    assertThat(request.url).isEqualTo(PIXEL);
    assertThat(request.body).isEqualTo('event=purchase&endpoint_id=123.456'
      + '&evmt_value=49.9&evat_currency=EUR'
      + '&evat_page_location=https%3A%2F%2Fshop.example%2Fcart%3Fa%3D1%26b%3D%C3%A4%23top');
    assertThat(request.options).isEqualTo({method: 'POST', timeout: 5000, headers: {
      'Content-Type': 'text/plain;charset=UTF-8',
      'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0',
      'Referer': 'https://shop.example/cart?a=1&b=ä#top'}});
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: a configured endpoint field, event id and chosen parameters
  code: |-
    mockData.endpointIdField = 'user_data.endpoint_id';
    mockData.eventIdField = 'event_id';
    mockData.attributeParameters = [{key: 'coupon', name: ''}, {key: 'items_note', name: 'note'},
      {key: 'absent', name: ''}];
    mockData.metricParameters = [{key: 'shipping', name: 'shipping_cost'}];
    mockData.forwardBrowserHeaders = false;
    let request;
    mock('sendHttpRequest', function(url, callback, options, body) {
      request = {options: options, body: body};
      callback(200, {}, '{"accepted": 1, "refused": []}');
    });
    runCode(mockData);
    assertThat(request.body).isEqualTo('event=purchase&endpoint_id=ep%2342&event_id=e-1'
      + '&evmt_value=49.9&evat_currency=EUR'
      + '&evat_page_location=https%3A%2F%2Fshop.example%2Fcart%3Fa%3D1%26b%3D%C3%A4%23top'
      + '&evat_coupon=SPRING%2026&evat_note=a%3Db&evmt_shipping_cost=4.5');
    assertThat(request.options.headers).isEqualTo({'Content-Type': 'text/plain;charset=UTF-8'});
- name: a long page_location is cut to 200 characters, never inside an emoji
  code: |-
    let path = '';
    for (let i = 0; i < 178; i++) { path += 'x'; }
    // 21 + 178 = 199 characters, then an emoji (2 UTF-16 units) across the limit.
    eventData.page_location = 'https://shop.example/' + path + '😀' + path;
    let body;
    mock('getAllEventData', eventData);
    mock('sendHttpRequest', function(url, callback, options, sent) {
      body = sent;
      callback(200, {}, '{"accepted": 1, "refused": []}');
    });
    runCode(mockData);
    assertThat(body.split('&evat_page_location=')[1]).isEqualTo('https%3A%2F%2Fshop.example%2F' + path);
    assertApi('gtmOnSuccess').wasCalled();
- name: a line the pixel refuses fails the tag with the reason
  code: |-
    mock('sendHttpRequest', function(url, callback) {
      callback(200, {}, '{"accepted": 0, "refused": [{"line": 1, "reason": "event: is required"}]}');
    });
    runCode(mockData);
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
    assertApi('logToConsole').wasCalledWith(
      'pixel-relay server tag: event not recorded (HTTP 200, refused: event: is required)');
- name: 503 when the queue did not take it fails the tag
  code: |-
    mock('sendHttpRequest', function(url, callback) {
      callback(503, {}, '{"accepted": 0, "refused": [], "unavailable": [1]}');
    });
    runCode(mockData);
    assertApi('gtmOnFailure').wasCalled();
    assertApi('logToConsole').wasCalledWith(
      'pixel-relay server tag: event not recorded (HTTP 503, not queued (retry later))');
- name: a missing endpoint id sends nothing and fails
  code: |-
    eventData.client_id = undefined;
    mock('getAllEventData', eventData);
    runCode(mockData);
    assertApi('sendHttpRequest').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('logToConsole').wasCalledWith('pixel-relay server tag: client_id is empty: nothing sent');
setup: |-
  const PIXEL = 'https://abc123.execute-api.eu-west-1.amazonaws.com/api/events';
  const mockData = {
    pixelUrl: PIXEL,
    endpointIdField: 'client_id',
    eventIdField: '',
    attributeParameters: [],
    metricParameters: [],
    forwardBrowserHeaders: true
  };
  const eventData = {
    event_name: 'purchase',
    client_id: '123.456',
    value: 49.9,
    currency: 'EUR',
    page_location: 'https://shop.example/cart?a=1&b=ä#top',
    user_agent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0',
    event_id: 'e-1',
    coupon: 'SPRING 26',
    items_note: 'a=b',
    shipping: 4.5,
    user_data: {endpoint_id: 'ep#42'}
  };
  mock('getAllEventData', eventData);
  mock('getEventData', function(key) {
    const parts = key.split('.');
    let value = eventData;
    for (let i = 0; i < parts.length; i++) {
      value = value === undefined || value === null ? undefined : value[parts[i]];
    }
    return value;
  });


___NOTES___

pixel-relay (gtm/pixel-relay-server-tag.tpl). Its scenarios run in Node with
tests/gtm/harness.mjs (make test); GTM's template editor runs them too (Tests tab).
