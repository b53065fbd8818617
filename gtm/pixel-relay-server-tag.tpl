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
  "description": "Sends the event a GA4 client claimed to a pixel-relay stage: one line, POST /events, text/plain, with its consent state and this server's clock. Every value is checked against the relay's limits in the tag. Succeeds when the pixel accepted it. See docs/gtm-setup.md.",
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
    "help": "For example https://abc123.execute-api.eu-central-1.amazonaws.com/api/events. If the host is not under amazonaws.com (a custom domain), add it to this template's send_http permission.",
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
    "help": "currency and page_location (without its fragment) are always sent (evat_currency, evat_page_location) when the event has them. Values longer than 200 characters are cut to 200; control characters become spaces; an object or an array refuses the event (console message)."
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
    "type": "SIMPLE_TABLE",
    "name": "consentParameters",
    "displayName": "Consent from event data (optional)",
    "simpleTableColumns": [
      {
        "defaultValue": "ad_user_data",
        "displayName": "Consent type",
        "name": "type",
        "type": "SELECT",
        "selectItems": [
          {
            "value": "ad_storage",
            "displayValue": "ad_storage"
          },
          {
            "value": "analytics_storage",
            "displayValue": "analytics_storage"
          },
          {
            "value": "ad_user_data",
            "displayValue": "ad_user_data"
          },
          {
            "value": "ad_personalization",
            "displayValue": "ad_personalization"
          }
        ]
      },
      {
        "defaultValue": "",
        "displayName": "Event data key (granted/denied, true/false, 1/0)",
        "name": "key",
        "type": "TEXT",
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ]
      }
    ],
    "help": "The tag sends the consent state it finds as the consent parameter; the stage's CONSENT_REQUIRED decides where the event may go. ad_storage and analytics_storage are read from the GA4 client's x-ga-gcs; a row here names the event data key of a type (for ad_user_data and ad_personalization, say) and wins over x-ga-gcs. A type found nowhere is not sent (the stage's CONSENT_WHEN_UNKNOWN applies)."
  },
  {
    "type": "CHECKBOX",
    "name": "forwardBrowserHeaders",
    "checkboxText": "Send the visitor's user_agent as User-Agent and page_location as Referer",
    "simpleValueType": true,
    "defaultValue": true,
    "help": "The pixel's bot filter reads the User-Agent and its page-origin allowlist (ALLOWED_PAGE_ORIGINS) the Referer: with this on they judge the visitor's browser and page (the Referer percent-encoded, without its fragment). Off, or when the event has no user_agent, the tag sends its own User-Agent, pixel-relay-server-tag/1 (GTM server container), which the bot filter accepts."
  }
]


___SANDBOXED_JS_FOR_SERVER___

// pixel-relay server tag: the GA4 client's event model -> one line -> POST /events. Every value
// is checked against the relay's limits here: cut to length where a shorter value still says
// the same (attribute values), refused with the reason in the console where it would not.
const encodeUriComponent = require('encodeUriComponent');
const getAllEventData = require('getAllEventData');
const getEventData = require('getEventData');
const getTimestampMillis = require('getTimestampMillis');
const getType = require('getType');
const JSON = require('JSON');
const logToConsole = require('logToConsole');
const makeNumber = require('makeNumber');
const makeString = require('makeString');
const queryPermission = require('queryPermission');
const sendHttpRequest = require('sendHttpRequest');

const LOG_PREFIX = 'pixel-relay server tag: ';
const TIMEOUT_MILLIS = 5000;
// The relay's limits (chalicelib/limits.py), counted in UTF-16 units as JavaScript counts.
const EVENT_NAME_LENGTH = 50;
const IDENTIFIER_LENGTH = 128;
const ATTRIBUTE_NAME_LENGTH = 50;
const ATTRIBUTE_LENGTH = 200;
const KEYS_PER_EVENT = 40;
const LINE_BYTES = 8192;
// Sent when the visitor's User-Agent is not forwarded: the relay's bot filter accepts it.
const SERVER_USER_AGENT = 'pixel-relay-server-tag/1 (GTM server container)';
const INVENTED = ['undefined', 'null'];
const CONSENT_TYPES = ['ad_storage', 'analytics_storage', 'ad_user_data', 'ad_personalization'];

function log(message) {
  logToConsole(LOG_PREFIX + message);
}

function isUnset(value) {
  return value === undefined || value === null || value === '';
}

// A refusal: the event is not sent and the reason goes to the console.
function Refusal(message) {
  return {refused: message};
}

function refused(value) {
  return getType(value) === 'object' && getType(value.refused) === 'string';
}

function scalar(label, value) {
  const type = getType(value);
  if (type === 'object' || type === 'array' || type === 'function') {
    return Refusal(label + ' is ' + (type === 'array' ? 'an array' : 'an ' + type) +
      ', not a text or a number');
  }
  return makeString(value);
}

function isControl(code) {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0xfffe || code === 0xffff;
}

// An identifier the relay accepts: 1-128 printable ASCII characters without spaces.
function identifier(label, value) {
  const text = scalar(label, value);
  if (refused(text)) {
    return text;
  }
  if (INVENTED.indexOf(text) >= 0) {
    return Refusal(label + ' is "' + text + '", what GTM writes for an unset variable');
  }
  if (text.length > IDENTIFIER_LENGTH) {
    return Refusal(label + ' is ' + text.length + ' characters; the relay allows ' +
      IDENTIFIER_LENGTH);
  }
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) {
      return Refusal(label + ' must be printable ASCII without spaces');
    }
  }
  return text;
}

function eventName(value) {
  const text = scalar('event_name', value);
  if (refused(text)) {
    return text;
  }
  if (INVENTED.indexOf(text) >= 0) {
    return Refusal('event_name is "' + text + '", what GTM writes for an unset variable');
  }
  if (text.length > EVENT_NAME_LENGTH) {
    return Refusal('event_name is ' + text.length + ' characters; the relay allows ' +
      EVENT_NAME_LENGTH);
  }
  if (text.charAt(0) === '_') {
    return Refusal('event_name starts with _, which names Pinpoint\'s built-in events');
  }
  if (text.trim() !== text) {
    return Refusal('event_name has leading or trailing spaces');
  }
  for (let i = 0; i < text.length; i++) {
    if (isControl(text.charCodeAt(i))) {
      return Refusal('event_name has a control character');
    }
  }
  return text;
}

function attributeName(label, name) {
  const text = makeString(name);
  if (text === '' || text.length > ATTRIBUTE_NAME_LENGTH || text.trim() !== text) {
    return Refusal(label + ': an attribute or metric name is 1-' + ATTRIBUTE_NAME_LENGTH +
      ' characters without leading or trailing spaces');
  }
  return text;
}

// An attribute value cut to the relay's 200 (never inside a surrogate pair), control
// characters turned into spaces (the relay refuses them; a space says the same).
function attributeValue(label, value) {
  const text = scalar(label, value);
  if (refused(text)) {
    return text;
  }
  let clean = '';
  for (let i = 0; i < text.length; i++) {
    clean += isControl(text.charCodeAt(i)) ? ' ' : text.charAt(i);
  }
  if (clean.length <= ATTRIBUTE_LENGTH) {
    return clean;
  }
  let cut = clean.substring(0, ATTRIBUTE_LENGTH);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xD800 && last <= 0xDBFF) {
    cut = cut.substring(0, cut.length - 1);
  }
  return cut;
}

function metricValue(label, value) {
  const type = getType(value);
  if (type !== 'number' && type !== 'string') {
    return Refusal(label + ' is not a number');
  }
  const number = makeNumber(value);
  if (getType(number) !== 'number' || number !== number || number === 1 / 0 ||
      number === -1 / 0 || (type === 'string' && makeString(value).trim() === '')) {
    return Refusal(label + ' is not a finite number');
  }
  return makeString(number);
}

// The page's URL without its fragment (which the page kept to itself).
function withoutFragment(url) {
  const hash = url.indexOf('#');
  return hash < 0 ? url : url.substring(0, hash);
}

// A URL as a header may carry it: characters outside printable ASCII percent-encoded as UTF-8
// (existing escapes kept), or undefined if it holds half of a character.
function asciiUrl(url) {
  let result = '';
  for (let i = 0; i < url.length; i++) {
    const code = url.charCodeAt(i);
    if (code > 0x20 && code < 0x7f) {
      result += url.charAt(i);
      continue;
    }
    let character = url.charAt(i);
    if (code >= 0xD800 && code <= 0xDBFF && i + 1 < url.length) {
      character = url.substring(i, i + 2);
      i++;
    }
    const encoded = encodeUriComponent(character);
    if (encoded === undefined) {
      return undefined;
    }
    result += encoded;
  }
  return result;
}

function Line() {
  return {parts: [], keys: 0, refusal: null};
}

function add(line, name, value) {
  if (line.refusal) {
    return;
  }
  if (refused(value)) {
    line.refusal = value.refused;
    return;
  }
  const key = encodeUriComponent(name);
  const text = encodeUriComponent(value);
  if (key === undefined || text === undefined) {
    line.refusal = name + ' holds half of a character (a lone surrogate)';
    return;
  }
  line.parts.push(key + '=' + text);
}

function addKey(line, prefix, label, name, value) {
  const checkedName = attributeName(label, name);
  if (refused(checkedName)) {
    add(line, prefix + name, checkedName);
    return;
  }
  line.keys++;
  add(line, prefix + checkedName,
    prefix === 'evat_' ? attributeValue(prefix + checkedName, value) :
      metricValue(prefix + checkedName, value));
}

function tableRows(table) {
  return getType(table) === 'array' ? table : [];
}

// The consent state the event carries: x-ga-gcs (G1, then ad_storage and analytics_storage,
// 1 granted, 0 denied), then each type the table names an event data key for.
function consentState(event) {
  const states = {};
  const gcs = event['x-ga-gcs'];
  if (getType(gcs) === 'string' && gcs.length === 4 && gcs.substring(0, 2) === 'G1') {
    const flags = [gcs.charAt(2), gcs.charAt(3)];
    const types = ['ad_storage', 'analytics_storage'];
    for (let i = 0; i < 2; i++) {
      if (flags[i] === '1' || flags[i] === '0') {
        states[types[i]] = flags[i] === '1' ? 'granted' : 'denied';
      }
    }
  }
  const rows = tableRows(data.consentParameters);
  for (let i = 0; i < rows.length; i++) {
    const value = getEventData(rows[i].key);
    if (value === true || value === 'granted' || value === '1' || value === 1) {
      states[rows[i].type] = 'granted';
    } else if (value === false || value === 'denied' || value === '0' || value === 0) {
      states[rows[i].type] = 'denied';
    }
  }
  const pairs = [];
  for (let i = 0; i < CONSENT_TYPES.length; i++) {
    if (states[CONSENT_TYPES[i]]) {
      pairs.push(CONSENT_TYPES[i] + ':' + states[CONSENT_TYPES[i]]);
    }
  }
  return pairs.join(',');
}

// The hit's line, or a Refusal.
function hitLine(event) {
  const line = Line();
  add(line, 'event', eventName(event.event_name));
  add(line, 'endpoint_id', identifier(data.endpointIdField, getEventData(data.endpointIdField)));
  if (data.eventIdField && !isUnset(getEventData(data.eventIdField))) {
    add(line, 'event_id', identifier(data.eventIdField, getEventData(data.eventIdField)));
  }
  if (!isUnset(event.value)) {
    addKey(line, 'evmt_', 'value', 'value', event.value);
  }
  if (!isUnset(event.currency)) {
    addKey(line, 'evat_', 'currency', 'currency', event.currency);
  }
  if (!isUnset(event.page_location)) {
    const location = scalar('page_location', event.page_location);
    addKey(line, 'evat_', 'page_location', 'page_location',
      refused(location) ? location : withoutFragment(location));
  }
  const attributes = tableRows(data.attributeParameters);
  for (let i = 0; i < attributes.length; i++) {
    const value = getEventData(attributes[i].key);
    if (value !== undefined && value !== null) {
      addKey(line, 'evat_', attributes[i].key, attributes[i].name || attributes[i].key, value);
    }
  }
  const metrics = tableRows(data.metricParameters);
  for (let i = 0; i < metrics.length; i++) {
    const value = getEventData(metrics[i].key);
    if (!isUnset(value)) {
      addKey(line, 'evmt_', metrics[i].key, metrics[i].name || metrics[i].key, value);
    }
  }
  if (line.keys > KEYS_PER_EVENT) {
    return Refusal(line.keys + ' attributes and metrics; the relay allows ' + KEYS_PER_EVENT);
  }
  const consent = consentState(event);
  if (consent) {
    add(line, 'consent', consent);
  }
  add(line, 'sent_at', makeString(getTimestampMillis()));
  if (line.refusal) {
    return Refusal(line.refusal);
  }
  const text = line.parts.join('&');
  // Percent-encoded ASCII: one byte a character.
  if (text.length > LINE_BYTES) {
    return Refusal('the hit is ' + text.length + ' bytes; the relay takes ' + LINE_BYTES);
  }
  return text;
}

function requestHeaders(event) {
  const headers = {'Content-Type': 'text/plain;charset=UTF-8', 'User-Agent': SERVER_USER_AGENT};
  if (data.forwardBrowserHeaders) {
    if (!isUnset(event.user_agent) && getType(event.user_agent) === 'string') {
      headers['User-Agent'] = event.user_agent;
    }
    if (!isUnset(event.page_location) && getType(event.page_location) === 'string') {
      const referer = asciiUrl(withoutFragment(event.page_location));
      if (referer !== undefined) {
        headers.Referer = referer;
      }
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
  const line = hitLine(event);
  if (refused(line)) {
    log(line.refused + ': nothing sent');
    data.gtmOnFailure();
    return;
  }
  const options = {method: 'POST', headers: requestHeaders(event), timeout: TIMEOUT_MILLIS};
  sendHttpRequest(data.pixelUrl, function(statusCode, headers, body) {
    settle(statusCode, body);
  }, options, line);
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
      + '&evat_page_location=https%3A%2F%2Fshop.example%2Fcart%3Fa%3D1%26b%3D%C3%A4'
      + '&sent_at=1700000000000');
    assertThat(request.options).isEqualTo({method: 'POST', timeout: 5000, headers: {
      'Content-Type': 'text/plain;charset=UTF-8',
      'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0',
      'Referer': 'https://shop.example/cart?a=1&b=%C3%A4'}});
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: a configured endpoint field, event id and chosen parameters; its own User-Agent
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
      + '&evat_page_location=https%3A%2F%2Fshop.example%2Fcart%3Fa%3D1%26b%3D%C3%A4'
      + '&evat_coupon=SPRING%2026&evat_note=a%3Db&evmt_shipping_cost=4.5'
      + '&sent_at=1700000000000');
    assertThat(request.options.headers).isEqualTo({'Content-Type': 'text/plain;charset=UTF-8',
      'User-Agent': 'pixel-relay-server-tag/1 (GTM server container)'});
- name: the consent state from x-ga-gcs and from the event data keys named
  code: |-
    eventData['x-ga-gcs'] = 'G101';
    eventData.ads_consent = 'granted';
    mockData.consentParameters = [{type: 'ad_user_data', key: 'ads_consent'},
      {type: 'ad_personalization', key: 'absent'}];
    let body;
    mock('sendHttpRequest', function(url, callback, options, sent) {
      body = sent;
      callback(200, {}, '{"accepted": 1, "refused": []}');
    });
    runCode(mockData);
    assertThat(body).contains('&consent=ad_storage%3Adenied%2Canalytics_storage%3Agranted'
      + '%2Cad_user_data%3Agranted&sent_at=');
- name: a long page_location is cut to 200 characters, never inside an emoji
  code: |-
    let path = '';
    for (let i = 0; i < 178; i++) { path += 'x'; }
    // 21 + 178 = 199 characters, then an emoji (2 UTF-16 units) across the limit.
    eventData.page_location = 'https://shop.example/' + path + '😀' + path;
    let body;
    mock('sendHttpRequest', function(url, callback, options, sent) {
      body = sent;
      callback(200, {}, '{"accepted": 1, "refused": []}');
    });
    runCode(mockData);
    assertThat(body.split('&evat_page_location=')[1].split('&')[0])
      .isEqualTo('https%3A%2F%2Fshop.example%2F' + path);
    assertApi('gtmOnSuccess').wasCalled();
- name: an identifier that is GTM's text for an unset variable, or too long, refuses the event
  code: |-
    eventData.client_id = 'undefined';
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay server tag: client_id is "undefined", '
      + 'what GTM writes for an unset variable: nothing sent');
    let long = '';
    for (let i = 0; i < 129; i++) { long += 'a'; }
    eventData.client_id = long;
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay server tag: client_id is 129 '
      + 'characters; the relay allows 128: nothing sent');
    assertApi('sendHttpRequest').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
- name: an object as a value, or a metric that is not a number, refuses the event
  code: |-
    mockData.attributeParameters = [{key: 'items', name: ''}];
    eventData.items = [{id: 1}];
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay server tag: evat_items is an array, not a '
      + 'text or a number: nothing sent');
    mockData.attributeParameters = [];
    eventData.value = 'lots';
    runCode(mockData);
    assertApi('logToConsole').wasCalledWith('pixel-relay server tag: evmt_value is not a finite '
      + 'number: nothing sent');
    assertApi('sendHttpRequest').wasNotCalled();
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
    runCode(mockData);
    assertApi('sendHttpRequest').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('logToConsole').wasCalledWith('pixel-relay server tag: client_id is empty: nothing sent');
setup: |-
  const PIXEL = 'https://abc123.execute-api.eu-central-1.amazonaws.com/api/events';
  const mockData = {
    pixelUrl: PIXEL,
    endpointIdField: 'client_id',
    eventIdField: '',
    attributeParameters: [],
    metricParameters: [],
    consentParameters: [],
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
  mock('getAllEventData', function() { return eventData; });
  mock('getEventData', function(key) {
    const parts = key.split('.');
    let value = eventData;
    for (let i = 0; i < parts.length; i++) {
      value = value === undefined || value === null ? undefined : value[parts[i]];
    }
    return value;
  });
  mock('getTimestampMillis', 1700000000000);


___NOTES___

pixel-relay (gtm/pixel-relay-server-tag.tpl). Its scenarios run in Node on a strict emulator of
GTM's template runtime (devtools/gtm/emulator.mjs, docs/gtm-emulator.md; make test); GTM's
template editor runs them too (Tests tab).
