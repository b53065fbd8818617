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
  "description": "Sends one event to a pixel-relay stage: batched with other hits into POST /events beacons by the stage's own pixel-relay.js (they survive the page unloading), or as one image request (GET /events). Every value is URL-encoded by the tag; the consent state and the browser clock go with each hit. See docs/gtm-setup.md.",
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
    "help": "For example https://abc123.execute-api.eu-central-1.amazonaws.com/api/events. No query string: the tag adds it. If the host is not under amazonaws.com (a custom domain), add it to this template's send_pixel permission.",
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
    "help": "The visitor's endpoint id, usually a Data Layer Variable. When it is empty, or GTM's text for an unset variable (undefined, null), the tag sends nothing and fails, with the reason in Preview's console.",
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
    "help": "A unique id for this event, so a repeated request is recorded once. Empty: the tag makes one."
  },
  {
    "type": "TEXT",
    "name": "timestamp",
    "displayName": "Timestamp (optional)",
    "simpleValueType": true,
    "help": "When the event happened: ISO 8601 with an offset or Z, or epoch milliseconds. Empty: when the tag fired. Either way the tag also sends sent_at (this browser's clock as the hit leaves), so the pixel corrects a wrong clock."
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
    "type": "SELECT",
    "name": "transport",
    "displayName": "How hits are sent",
    "macrosInSelect": false,
    "selectItems": [
      {
        "value": "batched",
        "displayValue": "Batched beacons through pixel-relay.js (survive the page unloading)"
      },
      {
        "value": "image",
        "displayValue": "One image request per event"
      }
    ],
    "simpleValueType": true,
    "defaultValue": "batched",
    "help": "Batched (default): the tag loads pixel-relay.js from your stage (GET /pixel-relay.js, next to /events) once per page and hands it each hit; it sends up to 20 hits as one POST /events with navigator.sendBeacon, at the latest 5 s after the first, and at once when the page is hidden or left, so hits fired as the page unloads arrive too. The tag succeeds when the script has the hit. If the script cannot load, the tag sends the hit as an image request instead. Image: one GET /events per event; the tag succeeds when the pixel answered 200."
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

// pixel-relay web tag: one event per tag fire, every name and value URL-encoded here, handed to
// the stage's pixel-relay.js (batched beacons) or sent as one image request.
const createQueue = require('createQueue');
const encodeUriComponent = require('encodeUriComponent');
const generateRandom = require('generateRandom');
const getTimestampMillis = require('getTimestampMillis');
const getType = require('getType');
const injectScript = require('injectScript');
const isConsentGranted = require('isConsentGranted');
const logToConsole = require('logToConsole');
const makeString = require('makeString');
const makeTableMap = require('makeTableMap');
const queryPermission = require('queryPermission');
const sendPixel = require('sendPixel');

const LOG_PREFIX = 'pixel-relay tag: ';
const CACHE_BUSTER = 'gtmcb';  // IGNORED_PARAMETERS' default: the pixel ignores it
// The array pixel-relay.js reads hits from (not a browser global: see access_globals).
const QUEUE = 'pixelRelayQueue';
const QUEUE_VERSION = 1;
const SCRIPT_CACHE_TOKEN = 'pixel-relay';
// Consent types sent with every hit: the pixel's CONSENT_REQUIRED decides where it may go.
const CONSENT_TYPES = ['ad_storage', 'analytics_storage', 'ad_user_data', 'ad_personalization'];
// What GTM writes for a variable that is not set; never an identifier.
const INVENTED = ['undefined', 'null'];

function log(message) {
  logToConsole(LOG_PREFIX + message);
}

function isUnset(value) {
  return value === undefined || value === null;
}

// A refusal in the tag: the hit is not sent, the reason goes to the console.
function Refusal(message) {
  return {refused: message};
}

function textOf(value) {
  return isUnset(value) ? '' : makeString(value);
}

// A value as the text a parameter carries, or a Refusal: objects and arrays have no text form
// (makeString would send [object Object], or a,b).
function scalarText(label, value) {
  const type = getType(value);
  if (type === 'object' || type === 'array' || type === 'function') {
    return Refusal(label + ' is ' + (type === 'array' ? 'an array' : 'an ' + type) +
      ', not a text or a number: nothing sent');
  }
  return textOf(value);
}

function encoded(label, text) {
  const result = encodeUriComponent(text);
  if (result === undefined) {
    return Refusal(label + ' holds half of a character (a lone surrogate): nothing sent');
  }
  return result;
}

// The parts of the hit, or the first Refusal met.
function Hit() {
  return {parts: [], refusal: null};
}

function add(hit, name, value, label) {
  if (hit.refusal) {
    return;
  }
  const text = scalarText(label, value);
  if (getType(text) === 'object') {
    hit.refusal = text.refused;
    return;
  }
  const key = encoded(label, name);
  const encodedValue = encoded(label, text);
  if (getType(key) === 'object' || getType(encodedValue) === 'object') {
    hit.refusal = (getType(key) === 'object' ? key : encodedValue).refused;
    return;
  }
  hit.parts.push(key + '=' + encodedValue);
}

// Fields the pixel refuses a hit without (or with GTM's text for unset), in form order.
function missingField() {
  const required = [
    ['pixelUrl', 'Pixel URL'],
    ['eventName', 'Event name'],
    ['endpointId', 'Endpoint id']
  ];
  for (let i = 0; i < required.length; i++) {
    const value = data[required[i][0]];
    const type = getType(value);
    if (type === 'object' || type === 'array') {
      return required[i][1] + ' is ' + (type === 'array' ? 'an array' : 'an object') +
        ': nothing sent';
    }
    const text = textOf(value);
    if (text === '') {
      return required[i][1] + ' is empty: nothing sent';
    }
    if (INVENTED.indexOf(text) >= 0) {
      return required[i][1] + ' is "' + text + '", what GTM writes for an unset variable: ' +
        'nothing sent';
    }
  }
  const eventId = textOf(data.eventId);
  if (INVENTED.indexOf(eventId) >= 0) {
    return 'Event id is "' + eventId + '", what GTM writes for an unset variable: nothing sent';
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

function newEventId() {
  return makeString(getTimestampMillis()) + '-' + makeString(generateRandom(100000, 999999)) +
    makeString(generateRandom(100000, 999999));
}

function consentState() {
  const states = [];
  for (let i = 0; i < CONSENT_TYPES.length; i++) {
    states.push(CONSENT_TYPES[i] + ':' + (isConsentGranted(CONSENT_TYPES[i]) ? 'granted' : 'denied'));
  }
  return states.join(',');
}

// The hit's query string (also its line in a beacon), or a Refusal.
function hitQuery(firedAt) {
  const hit = Hit();
  add(hit, 'event', data.eventName, 'Event name');
  add(hit, 'endpoint_id', data.endpointId, 'Endpoint id');
  add(hit, 'event_id', textOf(data.eventId) !== '' ? data.eventId : newEventId(), 'Event id');
  add(hit, 'timestamp', textOf(data.timestamp) !== '' ? data.timestamp : firedAt, 'Timestamp');
  const attributes = merged(data.eventAttributesObject, data.eventAttributes);
  for (let name in attributes) {
    if (!isUnset(attributes[name])) {
      add(hit, 'evat_' + name, attributes[name], 'evat_' + name);
    }
  }
  const metrics = merged(data.eventMetricsObject, data.eventMetrics);
  for (let name in metrics) {
    // An empty metric is refused by the pixel: leave it out like an unset one.
    if (textOf(metrics[name]) !== '') {
      add(hit, 'evmt_' + name, metrics[name], 'evmt_' + name);
    }
  }
  const profile = data.profileAttributes || [];
  for (let i = 0; i < profile.length; i++) {
    const row = profile[i];
    const values = getType(row.value) === 'array' ? row.value : [row.value];
    for (let j = 0; j < values.length; j++) {
      // Empty, undefined or null would overwrite (or be refused for) a stored value.
      if (textOf(values[j]) !== '') {
        add(hit, row.kind + row.name, values[j], row.kind + row.name);
      }
    }
  }
  add(hit, 'consent', consentState(), 'consent');
  return hit.refusal ? Refusal(hit.refusal) : hit.parts.join('&');
}

function cacheBuster() {
  return makeString(getTimestampMillis()) + makeString(generateRandom(100000, 999999));
}

function sendImage(url, query) {
  const full = url + '?' + query + '&sent_at=' + makeString(getTimestampMillis()) + '&' +
    CACHE_BUSTER + '=' + cacheBuster();
  sendPixel(full, data.gtmOnSuccess, data.gtmOnFailure);
}

// pixel-relay.js sits beside /events on the stage's API.
function scriptUrl(url) {
  return url.substring(0, url.length - 'events'.length) + 'pixel-relay.js';
}

function sendBatched(url, query) {
  const script = scriptUrl(url);
  if (!queryPermission('inject_script', script)) {
    log('this template may not load ' + script + ' (add it to the inject_script permission): ' +
      'sending an image request instead');
    sendImage(url, query);
    return;
  }
  const push = createQueue(QUEUE);
  injectScript(script, function() {
    push({v: QUEUE_VERSION, url: url, line: query});
    data.gtmOnSuccess();
  }, function() {
    log('pixel-relay.js could not be loaded from ' + script + ': sending an image request instead');
    sendImage(url, query);
  }, SCRIPT_CACHE_TOKEN);
}

function main() {
  const missing = missingField();
  if (missing) {
    log(missing);
    data.gtmOnFailure();
    return;
  }
  const url = textOf(data.pixelUrl);
  if (url.indexOf('?') >= 0 || url.indexOf('#') >= 0 ||
      url.substring(url.length - '/events'.length) !== '/events') {
    log('the Pixel URL must end with /events and have no query string or fragment: nothing sent');
    data.gtmOnFailure();
    return;
  }
  // The send_pixel permission is the URL allowlist for every transport.
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
  const query = hitQuery(makeString(getTimestampMillis()));
  if (getType(query) === 'object') {
    log(query.refused);
    data.gtmOnFailure();
    return;
  }
  if (data.transport === 'image') {
    sendImage(url, query);
  } else {
    sendBatched(url, query);
  }
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
        "publicId": "inject_script",
        "versionId": "1"
      },
      "param": [
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
                    "string": "pixelRelayQueue"
                  },
                  {
                    "type": 8,
                    "boolean": true
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
                    "string": "ad_storage"
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
              },
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
              },
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
                    "string": "ad_user_data"
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
              },
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
                    "string": "ad_personalization"
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
- name: encodes every name and value (ampersand, hash, equals, spaces, unicode) in an image request
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
      + '&event_id=id-1&timestamp=1700000000000'
      + '&evat_product=shoes%20%26%20socks%20%231&evat_query=a%3Db%20c'
      + '&evat_city%20name=Z%C3%BCrich%20%F0%9F%98%80&evmt_price=49.9' + CONSENT + TAIL);
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: sends event id, timestamp and profile attributes; leaves unset values out
  code: |-
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
      + CONSENT + TAIL);
- name: an empty event id is made by the tag, so a resent hit is recorded once
  code: |-
    mockData.eventId = '';
    let sent;
    mock('sendPixel', function(url, onSuccess) { sent = url; onSuccess(); });
    runCode(mockData);
    assertThat(sent).contains('&event_id=1700000000000-123456123456&');
- name: attributes and metrics from data-layer objects, a table row winning over the object
  code: |-
    mockData.eventAttributesObject = {product: 'tea & cake', colour: 'green', gone: undefined};
    mockData.eventAttributes = [{name: 'colour', value: 'red'}];
    mockData.eventMetricsObject = {price: 3.5, empty: ''};
    let sent;
    mock('sendPixel', function(url, onSuccess) { sent = url; onSuccess(); });
    runCode(mockData);
    assertThat(sent).isEqualTo(PIXEL + '?event=purchase&endpoint_id=ep-1&event_id=id-1'
      + '&timestamp=1700000000000&evat_product=tea%20%26%20cake&evat_colour=red&evmt_price=3.5'
      + CONSENT + TAIL);
- name: an image that fails to load fails the tag
  code: |-
    mock('sendPixel', function(url, onSuccess, onFailure) { onFailure(); });
    runCode(mockData);
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: batched (the field's default), the hit goes to pixel-relay.js's queue once it is loaded
  code: |-
    mockData.transport = 'batched';
    const pushed = [];
    mock('createQueue', function(key) {
      assertThat(key).isEqualTo('pixelRelayQueue');
      return function(value) { pushed.push(value); };
    });
    mock('injectScript', function(url, onSuccess, onFailure, cacheToken) { onSuccess(); });
    runCode(mockData);
    assertApi('injectScript').wasCalledWith(SCRIPT);
    assertThat(pushed).isEqualTo([{v: 1, url: PIXEL, line: 'event=purchase&endpoint_id=ep-1'
      + '&event_id=id-1&timestamp=1700000000000' + CONSENT}]);
    assertApi('sendPixel').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
- name: a script that cannot be loaded falls back to an image request
  code: |-
    mockData.transport = 'batched';
    mock('injectScript', function(url, onSuccess, onFailure) { onFailure(); });
    let sent;
    mock('sendPixel', function(url, onSuccess) { sent = url; onSuccess(); });
    runCode(mockData);
    assertThat(sent).isEqualTo(PIXEL + '?event=purchase&endpoint_id=ep-1&event_id=id-1'
      + '&timestamp=1700000000000' + CONSENT + TAIL);
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: pixel-relay.js could not be loaded'
      + ' from ' + SCRIPT + ': sending an image request instead');
- name: consent denied sends nothing and succeeds
  code: |-
    mock('isConsentGranted', function(type) { return type !== 'analytics_storage'; });
    runCode(mockData);
    assertApi('isConsentGranted').wasCalledWith('analytics_storage');
    assertApi('sendPixel').wasNotCalled();
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: consent denied but not required still sends, with the consent state for the pixel
  code: |-
    mockData.requireAnalyticsStorage = false;
    mock('isConsentGranted', function(type) { return type === 'ad_storage'; });
    let sent;
    mock('sendPixel', function(url, onSuccess) { sent = url; onSuccess(); });
    runCode(mockData);
    assertThat(sent).contains('&consent=ad_storage%3Agranted%2Canalytics_storage%3Adenied'
      + '%2Cad_user_data%3Adenied%2Cad_personalization%3Adenied&');
- name: a missing endpoint id sends nothing and fails
  code: |-
    mockData.endpointId = undefined;
    runCode(mockData);
    assertApi('sendPixel').wasNotCalled();
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: Endpoint id is empty: nothing sent');
- name: an identifier that is GTM's text for an unset variable sends nothing and fails
  code: |-
    mockData.endpointId = 'undefined';
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: Endpoint id is "undefined", what '
      + 'GTM writes for an unset variable: nothing sent');
    mockData.endpointId = 'ep-1';
    mockData.eventId = 'null';
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: Event id is "null", what '
      + 'GTM writes for an unset variable: nothing sent');
    assertApi('sendPixel').wasNotCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: an object or an array as a value is refused in the tag, not sent as [object Object]
  code: |-
    mockData.eventAttributes = [{name: 'cart', value: {items: 2}}];
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: evat_cart is an object, not a text '
      + 'or a number: nothing sent');
    mockData.eventAttributes = [];
    mockData.profileAttributes = [{kind: 'usat_', name: 'tags', value: [['a', 'b']]}];
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: usat_tags is an array, not a text '
      + 'or a number: nothing sent');
    assertApi('sendPixel').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
- name: a value with half of an emoji is refused in the tag, not sent as undefined
  code: |-
    mockData.eventAttributes = [{name: 'note', value: 'cut \uD83D'}];
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: evat_note holds half of a character'
      + ' (a lone surrogate): nothing sent');
    assertApi('sendPixel').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
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
    mockData.transport = 'batched';
    runCode(mockData);
    assertApi('sendPixel').wasNotCalled();
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('logToConsole').wasCalledWith('pixel-relay tag: this template may not send to '
      + 'https://pixel.example.com/events: add it to the send_pixel permission');
setup: |-
  const PIXEL = 'https://abc123.execute-api.eu-central-1.amazonaws.com/api/events';
  const SCRIPT = 'https://abc123.execute-api.eu-central-1.amazonaws.com/api/pixel-relay.js';
  const CONSENT = '&consent=ad_storage%3Agranted%2Canalytics_storage%3Agranted'
    + '%2Cad_user_data%3Agranted%2Cad_personalization%3Agranted';
  const TAIL = '&sent_at=1700000000000&gtmcb=1700000000000123456';
  const mockData = {
    pixelUrl: PIXEL,
    eventName: 'purchase',
    endpointId: 'ep-1',
    eventId: 'id-1',
    timestamp: '',
    eventAttributesObject: '',
    eventMetricsObject: '',
    eventAttributes: [],
    eventMetrics: [],
    profileAttributes: [],
    transport: 'image',
    requireAnalyticsStorage: true
  };
  mock('getTimestampMillis', 1700000000000);
  mock('generateRandom', 123456);


___NOTES___

pixel-relay (gtm/pixel-relay-tag.tpl). Its scenarios run in Node on a strict emulator of GTM's
template runtime (devtools/gtm/emulator.mjs, docs/gtm-emulator.md; make test); GTM's template
editor runs them too (Tests tab).
