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
  "displayName": "pixel-relay event",
  "categories": [
    "ANALYTICS",
    "MARKETING"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "pixel-relay"
  },
  "description": "Sends one event to a pixel-relay stage (GET /events as an image request, or POST /events with navigator.sendBeacon when the page may unload). Every value is URL-encoded by the tag. See docs/gtm-setup.md.",
  "containerContexts": [
    "WEB"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "pixelUrl",
    "displayName": "Pixel URL (your stage's API URL followed by events)",
    "simpleValueType": true,
    "help": "For example https://abc123.execute-api.eu-west-1.amazonaws.com/api/events. No query string: the tag adds it. If the host is not under amazonaws.com (a custom domain), add it to this template's send_pixel permission.",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^https?://[^?#\\s]+/events$"
        ],
        "errorMessage": "The URL ends with /events and has no query string or fragment."
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "eventName",
    "displayName": "Event name",
    "simpleValueType": true,
    "defaultValue": "{{Event}}",
    "help": "Pinpoint's event type: 1 to 50 characters, not starting with _.",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "endpointId",
    "displayName": "Endpoint id",
    "simpleValueType": true,
    "help": "The visitor's endpoint id, usually a Data Layer Variable. When it is empty the tag sends nothing and fails (the pixel would refuse the hit).",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "eventId",
    "displayName": "Event id (optional)",
    "simpleValueType": true,
    "help": "A unique id for this event, so a repeated request is recorded once. Empty: the pixel makes one."
  },
  {
    "type": "TEXT",
    "name": "timestamp",
    "displayName": "Timestamp (optional)",
    "simpleValueType": true,
    "help": "When the event happened: ISO 8601 with an offset or Z, or epoch milliseconds. Empty: the time the pixel received it."
  },
  {
    "type": "TEXT",
    "name": "eventAttributesObject",
    "displayName": "Event attributes from an object (optional)",
    "simpleValueType": true,
    "help": "A variable holding {name: value}, e.g. a Data Layer Variable for attributes. Each entry is sent as evat_name=value; a row of the table below with the same name wins."
  },
  {
    "type": "TEXT",
    "name": "eventMetricsObject",
    "displayName": "Event metrics from an object (optional)",
    "simpleValueType": true,
    "help": "A variable holding {name: number}, e.g. a Data Layer Variable for metrics. Each entry is sent as evmt_name=number; a row of the table below with the same name wins."
  },
  {
    "type": "SIMPLE_TABLE",
    "name": "eventAttributes",
    "displayName": "Event attributes (evat_)",
    "simpleTableColumns": [
      {
        "defaultValue": "",
        "displayName": "Name",
        "name": "name",
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
        "displayName": "Value",
        "name": "value",
        "type": "TEXT"
      }
    ],
    "help": "Sent as evat_name=value. A value that is undefined or null is left out."
  },
  {
    "type": "SIMPLE_TABLE",
    "name": "eventMetrics",
    "displayName": "Event metrics (evmt_)",
    "simpleTableColumns": [
      {
        "defaultValue": "",
        "displayName": "Name",
        "name": "name",
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
        "displayName": "Number",
        "name": "value",
        "type": "TEXT"
      }
    ],
    "help": "Sent as evmt_name=number. An empty, undefined or null value is left out."
  },
  {
    "type": "SIMPLE_TABLE",
    "name": "profileAttributes",
    "displayName": "Profile attributes (only names the stage allows)",
    "simpleTableColumns": [
      {
        "defaultValue": "usat_",
        "displayName": "Kind",
        "name": "kind",
        "type": "SELECT",
        "selectItems": [
          {
            "value": "usat_",
            "displayValue": "user attribute (usat_, ALLOWED_USER_ATTRIBUTES)"
          },
          {
            "value": "enat_",
            "displayValue": "endpoint attribute (enat_, ALLOWED_ENDPOINT_ATTRIBUTES)"
          },
          {
            "value": "enmt_",
            "displayValue": "endpoint metric (enmt_, ALLOWED_ENDPOINT_METRICS)"
          }
        ]
      },
      {
        "defaultValue": "",
        "displayName": "Name",
        "name": "name",
        "type": "TEXT",
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ]
      },
      {
        "defaultValue": "",
        "displayName": "Value (an array sends each element)",
        "name": "value",
        "type": "TEXT"
      }
    ],
    "help": "List only names the stage allows: the pixel refuses the whole hit, event included, for any other. An empty, undefined or null value is left out, so a stored value is never overwritten with it."
  },
  {
    "type": "CHECKBOX",
    "name": "pageMayUnload",
    "checkboxText": "The page may unload (a link click, a form submit, page hide): send with navigator.sendBeacon",
    "simpleValueType": true,
    "defaultValue": false,
    "help": "An image request is cancelled when the page unloads; a beacon is not. The beacon POSTs the hit to the same URL as text/plain. The tag succeeds when the browser queued the beacon; the pixel's answer cannot be read. Where the browser does not queue it, the tag sends an image request instead."
  },
  {
    "type": "CHECKBOX",
    "name": "requireAnalyticsStorage",
    "checkboxText": "Send only when analytics_storage consent is granted",
    "simpleValueType": true,
    "defaultValue": true,
    "help": "When consent is denied the tag sends nothing and reports success (it did what it should), with a console message in Preview. Sites without Consent Mode count as granted."
  }
]


___SANDBOXED_JS_FOR_WEB_TEMPLATE___

// pixel-relay web tag: one event per tag fire, every name and value URL-encoded here.
const callInWindow = require('callInWindow');
const encodeUriComponent = require('encodeUriComponent');
const generateRandom = require('generateRandom');
const getTimestampMillis = require('getTimestampMillis');
const getType = require('getType');
const isConsentGranted = require('isConsentGranted');
const logToConsole = require('logToConsole');
const makeString = require('makeString');
const makeTableMap = require('makeTableMap');
const queryPermission = require('queryPermission');
const sendPixel = require('sendPixel');

const LOG_PREFIX = 'pixel-relay tag: ';
const CACHE_BUSTER = 'gtmcb';  // IGNORED_PARAMETERS' default: the pixel ignores it

function log(message) {
  logToConsole(LOG_PREFIX + message);
}

function isUnset(value) {
  return value === undefined || value === null;
}

function textOf(value) {
  return isUnset(value) ? '' : makeString(value);
}

function pair(name, value) {
  return encodeUriComponent(name) + '=' + encodeUriComponent(value);
}

function listOf(value) {
  return getType(value) === 'array' ? value : [value];
}

// Fields the pixel refuses a hit without, in the order a user fills them.
function missingField() {
  const required = [
    ['pixelUrl', 'Pixel URL'],
    ['eventName', 'Event name'],
    ['endpointId', 'Endpoint id']
  ];
  for (let i = 0; i < required.length; i++) {
    if (textOf(data[required[i][0]]) === '') {
      return required[i][1];
    }
  }
  return null;
}

// {name: value} from an object variable, then the table's rows (a row wins over the object).
function merged(object, table) {
  const result = {};
  if (getType(object) === 'object') {
    for (let name in object) {
      result[name] = object[name];
    }
  }
  const rows = makeTableMap(table || [], 'name', 'value') || {};
  for (let name in rows) {
    result[name] = rows[name];
  }
  return result;
}

// The query string a GET would carry; also the one line a beacon POSTs.
function hitQuery() {
  const parts = [pair('event', textOf(data.eventName)), pair('endpoint_id', textOf(data.endpointId))];
  if (textOf(data.eventId) !== '') {
    parts.push(pair('event_id', textOf(data.eventId)));
  }
  if (textOf(data.timestamp) !== '') {
    parts.push(pair('timestamp', textOf(data.timestamp)));
  }
  const attributes = merged(data.eventAttributesObject, data.eventAttributes);
  for (let name in attributes) {
    if (!isUnset(attributes[name])) {
      parts.push(pair('evat_' + name, makeString(attributes[name])));
    }
  }
  const metrics = merged(data.eventMetricsObject, data.eventMetrics);
  for (let name in metrics) {
    // An empty metric is refused by the pixel: leave it out like an unset one.
    if (textOf(metrics[name]) !== '') {
      parts.push(pair('evmt_' + name, makeString(metrics[name])));
    }
  }
  const profile = data.profileAttributes || [];
  for (let i = 0; i < profile.length; i++) {
    const row = profile[i];
    const values = listOf(row.value);
    for (let j = 0; j < values.length; j++) {
      // Empty, undefined or null would overwrite (or be refused for) a stored value.
      if (textOf(values[j]) !== '') {
        parts.push(pair(row.kind + row.name, makeString(values[j])));
      }
    }
  }
  return parts.join('&');
}

function cacheBuster() {
  return makeString(getTimestampMillis()) + makeString(generateRandom(100000, 999999));
}

function sendImage(url, query) {
  const full = url + '?' + query + '&' + CACHE_BUSTER + '=' + cacheBuster();
  sendPixel(full, data.gtmOnSuccess, data.gtmOnFailure);
}

function main() {
  const missing = missingField();
  if (missing) {
    log(missing + ' is empty: nothing sent');
    data.gtmOnFailure();
    return;
  }
  const url = textOf(data.pixelUrl);
  if (url.indexOf('?') >= 0 || url.indexOf('#') >= 0) {
    log('the Pixel URL has a query string or fragment; give it as https://.../events');
    data.gtmOnFailure();
    return;
  }
  // The send_pixel permission is the URL allowlist for both transports.
  if (!queryPermission('send_pixel', url)) {
    log('this template may not send to ' + url + ': add it to the send_pixel permission');
    data.gtmOnFailure();
    return;
  }
  if (data.requireAnalyticsStorage && !isConsentGranted('analytics_storage')) {
    log('analytics_storage consent is not granted: nothing sent');
    data.gtmOnSuccess();
    return;
  }
  const query = hitQuery();
  if (data.pageMayUnload) {
    // A string body is sent as text/plain;charset=UTF-8: one hit, one line.
    if (callInWindow('navigator.sendBeacon', url, query) === true) {
      data.gtmOnSuccess();
      return;
    }
    log('the browser did not queue the beacon: sending an image request instead');
  }
  sendImage(url, query);
}

main();


___WEB_PERMISSIONS___

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
        "publicId": "send_pixel",
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
  },
  {
    "instance": {
      "key": {
        "publicId": "access_globals",
        "versionId": "1"
      },
      "param": [
        {
          "key": "keys",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "navigator.sendBeacon"
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": true
                  }
                ]
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
  },
  {
    "instance": {
      "key": {
        "publicId": "access_consent",
        "versionId": "1"
      },
      "param": [
        {
          "key": "consentTypes",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "consentType"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "analytics_storage"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
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
- name: encodes every name and value (ampersand, hash, equals, spaces, unicode)
  code: |-
    mockData.eventName = 'purchase&success';
    mockData.endpointId = 'ep#10';
    mockData.eventAttributes = [
      {name: 'product', value: 'shoes & socks #1'},
      {name: 'query', value: 'a=b c'},
      {name: 'city name', value: 'Zürich 😀'}
    ];
    mockData.eventMetrics = [{name: 'price', value: 49.9}];
    let sent;
    mock('sendPixel', function(url, onSuccess, onFailure) {
      sent = url;
      onSuccess();
    });
    runCode(mockData);
    assertThat(sent).isEqualTo(PIXEL + '?event=purchase%26success&endpoint_id=ep%2310'
      + '&evat_product=shoes%20%26%20socks%20%231&evat_query=a%3Db%20c'
      + '&evat_city%20name=Z%C3%BCrich%20%F0%9F%98%80&evmt_price=49.9'
      + '&gtmcb=1700000000000123456');
    assertApi('callInWindow').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: sends event id, timestamp and profile attributes; leaves unset values out
  code: |-
    mockData.eventId = 'id-1';
    mockData.timestamp = '2026-11-28T10:00:00+01:00';
    mockData.eventAttributes = [{name: 'plan', value: undefined}, {name: 'source', value: null}];
    mockData.eventMetrics = [{name: 'price', value: ''}];
    mockData.profileAttributes = [
      {kind: 'usat_', name: 'interests', value: ['running', 'jazz & blues', undefined]},
      {kind: 'usat_', name: 'language', value: undefined},
      {kind: 'enat_', name: 'tier', value: ''},
      {kind: 'enmt_', name: 'visits', value: 3}
    ];
    let sent;
    mock('sendPixel', function(url, onSuccess) { sent = url; onSuccess(); });
    runCode(mockData);
    assertThat(sent).isEqualTo(PIXEL + '?event=purchase&endpoint_id=ep-1&event_id=id-1'
      + '&timestamp=2026-11-28T10%3A00%3A00%2B01%3A00'
      + '&usat_interests=running&usat_interests=jazz%20%26%20blues&enmt_visits=3'
      + '&gtmcb=1700000000000123456');
- name: attributes and metrics from data-layer objects, a table row winning over the object
  code: |-
    mockData.eventAttributesObject = {product: 'tea & cake', colour: 'green', gone: undefined};
    mockData.eventAttributes = [{name: 'colour', value: 'red'}];
    mockData.eventMetricsObject = {price: 3.5, empty: ''};
    let sent;
    mock('sendPixel', function(url, onSuccess) { sent = url; onSuccess(); });
    runCode(mockData);
    assertThat(sent).isEqualTo(PIXEL + '?event=purchase&endpoint_id=ep-1'
      + '&evat_product=tea%20%26%20cake&evat_colour=red&evmt_price=3.5'
      + '&gtmcb=1700000000000123456');
- name: an image that fails to load fails the tag
  code: |-
    mock('sendPixel', function(url, onSuccess, onFailure) { onFailure(); });
    runCode(mockData);
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: the page may unload, so one text line is sent with navigator.sendBeacon
  code: |-
    mockData.pageMayUnload = true;
    mockData.eventAttributes = [{name: 'link', value: '/p?x=1&y=2#top'}];
    mock('callInWindow', function(path, url, body) { return true; });
    runCode(mockData);
    assertApi('callInWindow').wasCalledWith('navigator.sendBeacon', PIXEL,
      'event=purchase&endpoint_id=ep-1&evat_link=%2Fp%3Fx%3D1%26y%3D2%23top');
    assertApi('sendPixel').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
- name: a beacon the browser did not queue falls back to an image request
  code: |-
    mockData.pageMayUnload = true;
    mock('callInWindow', function() { return false; });
    let sent;
    mock('sendPixel', function(url, onSuccess) { sent = url; onSuccess(); });
    runCode(mockData);
    assertApi('callInWindow').wasCalled();
    assertThat(sent).isEqualTo(PIXEL + '?event=purchase&endpoint_id=ep-1&gtmcb=1700000000000123456');
    assertApi('gtmOnSuccess').wasCalled();
- name: consent denied sends nothing and succeeds
  code: |-
    mock('isConsentGranted', function(type) { return type !== 'analytics_storage'; });
    runCode(mockData);
    assertApi('isConsentGranted').wasCalledWith('analytics_storage');
    assertApi('sendPixel').wasNotCalled();
    assertApi('callInWindow').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: consent denied but not required still sends
  code: |-
    mockData.requireAnalyticsStorage = false;
    mock('isConsentGranted', false);
    mock('sendPixel', function(url, onSuccess) { onSuccess(); });
    runCode(mockData);
    assertApi('isConsentGranted').wasNotCalled();
    assertApi('sendPixel').wasCalled();
- name: a missing endpoint id sends nothing and fails
  code: |-
    mockData.endpointId = undefined;
    runCode(mockData);
    assertApi('sendPixel').wasNotCalled();
    assertApi('callInWindow').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: Endpoint id is empty: nothing sent');
- name: a missing event name or pixel URL sends nothing and fails
  code: |-
    mockData.eventName = '';
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: Event name is empty: nothing sent');
    mockData.eventName = 'purchase';
    mockData.pixelUrl = '';
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: Pixel URL is empty: nothing sent');
    assertApi('sendPixel').wasNotCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: a pixel URL outside the send_pixel permission fails with its reason, either transport
  code: |-
    mockData.pixelUrl = 'https://pixel.example.com/events';
    runCode(mockData);
    mockData.pageMayUnload = true;
    runCode(mockData);
    assertApi('sendPixel').wasNotCalled();
    assertApi('callInWindow').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: this template may not send to '
      + 'https://pixel.example.com/events: add it to the send_pixel permission');
setup: |-
  const PIXEL = 'https://abc123.execute-api.eu-west-1.amazonaws.com/api/events';
  const mockData = {
    pixelUrl: PIXEL,
    eventName: 'purchase',
    endpointId: 'ep-1',
    eventId: '',
    timestamp: '',
    eventAttributesObject: '',
    eventMetricsObject: '',
    eventAttributes: [],
    eventMetrics: [],
    profileAttributes: [],
    pageMayUnload: false,
    requireAnalyticsStorage: true
  };
  mock('getTimestampMillis', 1700000000000);
  mock('generateRandom', 123456);


___NOTES___

pixel-relay (gtm/pixel-relay-tag.tpl). Its scenarios run in Node with tests/gtm/harness.mjs
(make test); GTM's template editor runs them too (Tests tab).
