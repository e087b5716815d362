--- *exo.render* Events as timeline lines: pure functions, no buffers.
---
--- Every event becomes one or more lines, each with a highlight group. An
--- event of a kind this plugin does not know is shown as its kind and its
--- fields as JSON (the protocol asks clients to keep such events, never to
--- fail on them).

local M = {}

--- The last eight hex digits of an id: a UUIDv7 starts with its time, so
--- the end is what tells events apart.
---@param id string?
---@return string
function M.short(id)
  if type(id) ~= 'string' then
    return '-'
  end
  local hex = id:gsub('-', '')
  return hex:sub(-8)
end

--- Compact JSON, cut to `max` characters.
---@param value any
---@param max integer?
---@return string
function M.json(value, max)
  local ok, text = pcall(vim.json.encode, value)
  if not ok then
    text = vim.inspect(value)
  end
  max = max or 200
  if #text > max then
    text = text:sub(1, max) .. '…'
  end
  return text
end

--- `text` cut to `max` bytes (on a character boundary), marked `…`.
---@param text string
---@param max integer
---@return string
function M.cut(text, max)
  if #text <= max then
    return text
  end
  local cut = text:sub(1, max)
  -- Not in the middle of a UTF-8 sequence.
  local start = vim.str_utf_start(cut, #cut)
  if start < 0 then
    cut = cut:sub(1, #cut + start - 1)
  end
  return cut .. '…'
end

--- The text of a message's content parts (a plain string is one part).
---@param content any
---@return string text, string reasoning
function M.content_text(content)
  if type(content) == 'string' then
    return content, ''
  end
  local text, reasoning = {}, {}
  for _, part in ipairs(content or {}) do
    if part.type == 'text' then
      table.insert(text, part.text or '')
    elseif part.type == 'reasoning' then
      table.insert(reasoning, part.text or '')
    elseif part.type == 'image' then
      table.insert(text, '[image ' .. tostring(part.media_type) .. ']')
    else
      table.insert(text, '[' .. tostring(part.type) .. ']')
    end
  end
  return table.concat(text, '\n'), table.concat(reasoning, '\n')
end

---@class exo.render.Line
---@field [1] string the text
---@field [2] string? its highlight group

--- Adds `label: text` as lines: the first with the label, the others
--- indented under it.
---@param out exo.render.Line[]
---@param indent string
---@param label string
---@param text string
---@param group string
local function labelled(out, indent, label, text, group)
  local first = true
  local pad = indent .. string.rep(' ', vim.fn.strdisplaywidth(label) + 2)
  for line in (text .. '\n'):gmatch('(.-)\r?\n') do
    if first then
      table.insert(out, { indent .. label .. ': ' .. line, group })
      first = false
    else
      table.insert(out, { pad .. line, group })
    end
  end
  if first then
    table.insert(out, { indent .. label .. ':', group })
  end
end

--- Bytes 0x80-0xFF that do not form valid UTF-8, as `\xNN`; other bytes
--- as they are.
---@param text string
---@return string
local function escape_invalid_utf8(text)
  local out, i, n = {}, 1, #text
  while i <= n do
    local b = text:byte(i)
    local len = b < 0x80 and 1 or (b >= 0xC2 and b <= 0xDF) and 2 or (b >= 0xE0 and b <= 0xEF) and 3 or (b >= 0xF0 and b <= 0xF4) and 4 or 0
    local ok = len > 0 and i + len - 1 <= n
    for j = i + 1, ok and i + len - 1 or i do
      local c = text:byte(j)
      if c < 0x80 or c > 0xBF then
        ok = false
      end
    end
    if ok and len == 3 then
      local c = text:byte(i + 1)
      ok = not ((b == 0xE0 and c < 0xA0) or (b == 0xED and c > 0x9F))
    elseif ok and len == 4 then
      local c = text:byte(i + 1)
      ok = not ((b == 0xF0 and c < 0x90) or (b == 0xF4 and c > 0x8F))
    end
    if ok then
      table.insert(out, text:sub(i, i + len - 1))
      i = i + len
    else
      table.insert(out, ('\\x%02x'):format(b))
      i = i + 1
    end
  end
  return table.concat(out)
end

--- `text` safe to show on one line: control characters (a newline among
--- them) and bytes that are not UTF-8 written as escapes, so a crafted
--- name cannot pass for more lines or other text.
---@param text string
---@return string
function M.escape(text)
  text = tostring(text)
  local named = { ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
  text = text:gsub('%c', function(c)
    return named[c] or ('\\x%02x'):format(c:byte())
  end)
  return escape_invalid_utf8(text)
end

--- What a tool call asks for, in a few words.
---@param name string?
---@param arguments any
---@return string
function M.describe_call(name, arguments)
  local args = type(arguments) == 'table' and arguments or {}
  if name == 'shell' and args.command then
    return 'shell: ' .. tostring(args.command)
  elseif (name == 'write_file' or name == 'edit_file' or name == 'read_file') and args.path then
    return name .. ' ' .. tostring(args.path)
  end
  return tostring(name) .. ' ' .. M.json(arguments, 120)
end

local function counts(event)
  return ('+%d ~%d -%d'):format(event.added or 0, event.modified or 0, event.deleted or 0)
end

--- The lines of one event.
---@param event table
---@return exo.render.Line[]
function M.event(event)
  local out = {}
  local kind = event.kind
  local inner = event.turn and '  ' or ''
  if kind == 'conversation_created' then
    local where = event.workspace and (' in ' .. event.workspace) or ''
    table.insert(out, { ('created %s (%s)%s'):format(tostring(event.name), tostring(event.slug), where), 'ExoMuted' })
  elseif kind == 'session_started' then
    table.insert(out, { 'session started', 'ExoMuted' })
  elseif kind == 'session_ended' then
    table.insert(out, { ('session ended (%s)'):format(tostring(event.reason)), 'ExoMuted' })
  elseif kind == 'turn_started' then
    table.insert(out, { ('turn %s ─────'):format(M.short(event.turn)), 'ExoTurn' })
  elseif kind == 'turn_ended' then
    local group = event.status == 'completed' and 'ExoTurn' or 'ExoError'
    table.insert(out, { ('turn ended: %s'):format(tostring(event.status)), group })
  elseif kind == 'message' then
    local text, reasoning = M.content_text(event.content)
    if reasoning ~= '' then
      labelled(out, inner, 'thinking', reasoning, 'ExoMuted')
    end
    local group = event.role == 'user' and 'ExoUser' or event.role == 'assistant' and 'ExoAssistant' or 'ExoMuted'
    labelled(out, inner, tostring(event.role), text, group)
  elseif kind == 'tool_call' then
    table.insert(out, {
      ('%stool %s %s %s'):format(inner, tostring(event.name), tostring(event.call_id), M.json(event.arguments)),
      'ExoTool',
    })
  elseif kind == 'tool_result' then
    local status = event.is_error and 'error' or 'ok'
    table.insert(out, {
      ('%sresult %s %s: %s'):format(inner, tostring(event.call_id), status, M.json(event.output)),
      event.is_error and 'ExoError' or 'ExoResult',
    })
  elseif kind == 'custom' and event.type == 'exo.approval' then
    local p = event.payload or {}
    local verdict = p.approved and 'allowed' or 'denied'
    table.insert(out, {
      ('%sapproval %s %s: %s (%s, by %s)'):format(inner, tostring(p.tool), tostring(p.call_id), verdict,
        tostring(p.decision), tostring(p.by)),
      p.approved and 'ExoApproval' or 'ExoError',
    })
  elseif kind == 'custom' then
    table.insert(out, { ('%scustom %s %s'):format(inner, tostring(event.type), M.json(event.payload)), 'ExoMuted' })
  elseif kind == 'workspace_snapshot' then
    local line = ('%ssnapshot %s %s %s'):format(inner, tostring(event.reason), tostring(event.commit):sub(1, 7), counts(event))
    if event.conflicts and #event.conflicts > 0 then
      local paths = vim.tbl_map(function(c)
        return c.path
      end, event.conflicts)
      line = line .. ' (left alone: ' .. table.concat(paths, ', ') .. ')'
    end
    table.insert(out, { line, 'ExoSnapshot' })
  elseif kind == 'rewound' then
    local line = ('rewound to %s (from %s)'):format(M.short(event.to_event), M.short(event.from_event))
    if event.snapshot then
      line = line .. ', files restored to ' .. tostring(event.snapshot):sub(1, 7)
    end
    table.insert(out, { line, 'ExoRewind' })
  elseif kind == 'forked' then
    table.insert(out, {
      ('forked from %s at %s'):format(M.short(event.from_conversation), M.short(event.from_event)),
      'ExoRewind',
    })
  elseif kind == 'error' then
    local code = event.code and (' (' .. tostring(event.code) .. ')') or ''
    labelled(out, inner, 'error', tostring(event.message) .. code, 'ExoError')
  elseif kind == 'artifact_written' then
    table.insert(out, {
      ('%sartifact %s v%s (%s bytes)'):format(inner, tostring(event.path), tostring(event.version), tostring(event.size)),
      'ExoMuted',
    })
  elseif kind == 'secret_set' or kind == 'secret_deleted' then
    table.insert(out, { ('%s%s %s'):format(inner, kind, tostring(event.name)), 'ExoMuted' })
  elseif kind == 'binding_set' then
    local b = event.binding or {}
    table.insert(out, { ('%sbinding set %s %s'):format(inner, tostring(b.type), tostring(b.name)), 'ExoMuted' })
  elseif kind == 'binding_deleted' then
    table.insert(out, { ('%sbinding deleted %s %s'):format(inner, tostring(event.binding_kind), tostring(event.name)), 'ExoMuted' })
  else
    local fields = {}
    for key, value in pairs(event) do
      if not vim.tbl_contains({ 'id', 'conversation', 'session', 'turn', 'created_at', 'kind' }, key) then
        fields[key] = value
      end
    end
    table.insert(out, { ('%s%s %s'):format(inner, tostring(kind), M.json(fields)), 'ExoMuted' })
  end
  return out
end

--- Links the highlight groups to standard ones, unless the colorscheme or
--- the user set them.
function M.define_highlights()
  local links = {
    ExoHeader = 'Title',
    ExoTurn = 'Title',
    ExoUser = 'Statement',
    ExoAssistant = 'Normal',
    ExoTool = 'Function',
    ExoResult = 'Comment',
    ExoApproval = 'Question',
    ExoError = 'ErrorMsg',
    ExoSnapshot = 'Constant',
    ExoRewind = 'WarningMsg',
    ExoMuted = 'Comment',
    ExoStreaming = 'Special',
  }
  for group, link in pairs(links) do
    vim.api.nvim_set_hl(0, group, { link = link, default = true })
  end
end

return M
