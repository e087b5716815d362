--- *exo.approvals* Answering the questions of turns waiting for approval.
---
--- Features:
--- - Each `approval/request` (from a turn this editor runs, or one it
---   watches) is announced once, in one line naming the conversation and
---   what the agent wants to do; `:Exo approvals` (`ga` in a timeline)
---   asks what waits,
---   through `vim.ui.select`: Deny, Allow once, Allow for this turn, Always
---   allow; the answer goes to `approval/respond`.
--- - With `approvals = 'ask'`, the question opens by itself, but only in
---   Normal mode with no keys pending.
--- - Questions are asked one at a time, in the order they came.
---
--- Key design ideas:
--- - A picker that opens by itself takes the keys meant for the buffer:
---   the default `vim.ui.select` is `inputlist()`, where "3<CR>" typed a
---   moment too late grants a tool for good. So by default nothing opens
---   unasked. When it does ('ask'), typeahead is set aside (`inputsave()`)
---   and the list starts with Deny, so stray keys never allow anything.
--- - The announcement is one line that fits the message area: a longer
---   one would open the hit-enter or more prompt, which takes keys too.
--- - The picker's prompt says which conversation asks and shows the whole
---   command (every line of it): an answer is given to what runs, not to a
---   summary. A picker that replaces Neovim's own may show one line of a
---   prompt, or its start (|exo.review|): for a call too long for it, it
---   offers only Deny and "Show the whole call…", a buffer showing all of
---   it, with the answers listed above it (Enter on one gives it).
--- - A question reaches this editor twice when it runs the turn and also
---   watches its conversation (once for each role): it is keyed by
---   `turn/call_id` and announced once.
--- - Any client may answer and the first answer counts: a question answered
---   elsewhere is dropped from the queue when its decision is recorded.

local client = require('exo.client')
local config = require('exo.config')
local render = require('exo.render')

local M = {}

-- Deny first: in a numbered list, a stray "1<CR>" refuses.
local choices = {
  { label = 'Deny', decision = 'deny' },
  { label = 'Allow once', decision = 'allow_once' },
  { label = 'Allow for this turn', decision = 'allow_turn' },
  { label = 'Always allow (this tool, every later turn of the agent)', decision = 'allow_always' },
}

-- The most of a command a prompt shows; the rest is counted.
local SHOWN_BYTES = 16 * 1024

---@class exo.approvals.Entry
---@field request table
---@field state 'waiting'|'queued'|'asking'|'dismissed'|'answered'
---@field answered_elsewhere string? how it was decided elsewhere while asked here ("was answered elsewhere")
---@field requested boolean? `:Exo approvals` asked for it: no wait for quiet
---@field review exo.review.Handle? the buffer showing the whole call, while open

---@type table<string, exo.approvals.Entry>
local entries = {}
---@type string[]
local queue = {}
local asking = false
local deferred = false

---@param request table
---@return string
local function key_of(request)
  return tostring(request.turn) .. '/' .. tostring(request.call_id)
end

--- `agent/conversation` of the request, as slugs when a timeline knows
--- them.
---@param request table
---@return string
local function where(request)
  local timeline = require('exo.timeline')
  local tl = (request.conversation and timeline.for_conversation(request.conversation)) or timeline.for_turn(request.turn)
  if tl then
    return ('%s/%s'):format(tl.agent_slug or tl.agent, tl.slug or tl.conversation)
  end
  if request.conversation then
    return 'conversation ' .. render.short(request.conversation)
  end
  return 'turn ' .. render.short(request.turn)
end

--- What the agent wants to do, on one line of at most `width` cells.
---@param request table
---@param width integer
---@return string
local function summary(request, width)
  local args = type(request.arguments) == 'table' and request.arguments or {}
  local text
  if request.tool == 'shell' and type(args.command) == 'string' then
    local lines = select(2, args.command:gsub('\n', '')) + 1
    text = (lines > 1 and ('run a %d-line command: '):format(lines) or 'run: ')
      .. render.escape(args.command:sub(1, 4 * width))
  else
    text = M.describe(request)
  end
  if vim.fn.strdisplaywidth(text) > width then
    text = vim.fn.strcharpart(text, 0, math.max(width - 1, 1)) .. '…'
    while vim.fn.strdisplaywidth(text) > width and #text > 1 do
      text = vim.fn.strcharpart(text, 0, vim.fn.strchars(text) - 2) .. '…'
    end
  end
  return text
end

--- What the agent wants to do, whole: every line of a command, control
--- characters of a path shown escaped.
---@param request table
---@return string
function M.describe(request)
  local args = type(request.arguments) == 'table' and request.arguments or {}
  if request.tool == 'shell' and type(args.command) == 'string' then
    local command = args.command
    local more = ''
    if #command > SHOWN_BYTES then
      more = ('\n… and %d more bytes'):format(#command - SHOWN_BYTES)
      command = command:sub(1, SHOWN_BYTES)
    end
    local lines = vim.split(command, '\n', { plain = true })
    if #lines == 1 then
      return 'run: ' .. render.escape(command) .. more
    end
    local shown = {}
    for i, line in ipairs(lines) do
      shown[i] = '  │ ' .. render.escape(line)
    end
    return ('run this %d-line command:\n%s%s'):format(#lines, table.concat(shown, '\n'), more)
  end
  if (request.tool == 'write_file' or request.tool == 'edit_file') and type(args.path) == 'string' then
    local text = ('%s %s'):format(request.tool, render.escape(args.path))
    if type(args.content) == 'string' then
      text = text .. (' (%d bytes)'):format(#args.content)
    end
    return text
  end
  return tostring(request.tool) .. ' ' .. render.escape(render.json(request.arguments, 2000))
end

---@param request table
---@param decision string
local function respond(request, decision)
  client.request('approval/respond', { turn = request.turn, call_id = request.call_id, decision = decision }, function(err)
    local entry = entries[key_of(request)]
    if entry then
      entry.state = 'answered'
    end
    if err then
      local code = err.data and err.data.code
      if code == 'not_found' then
        vim.notify('exo: that approval was already answered, or its turn ended', vim.log.levels.WARN)
      else
        vim.notify('exo: approval/respond: ' .. tostring(err.message), vim.log.levels.ERROR)
      end
    end
  end)
end

local ask_next

--- Whether a picker may open now without taking keys meant for something
--- else: Normal mode, nothing typed ahead, no operator pending.
---@return boolean
local function quiet()
  return vim.api.nvim_get_mode().mode == 'n' and vim.fn.getchar(1) == 0
end

--- Asks again once the user is back in Normal mode, or idle.
local function defer()
  if deferred then
    return
  end
  deferred = true
  vim.api.nvim_create_autocmd({ 'ModeChanged', 'CursorHold' }, {
    group = vim.api.nvim_create_augroup('exo.approvals.defer', { clear = true }),
    once = true,
    callback = function()
      deferred = false
      vim.schedule(ask_next)
    end,
  })
end

--- Ends the asking of `entry`: sends `decision`, or (nil) leaves the
--- question waiting; then asks the next one.
---@param entry exo.approvals.Entry
---@param decision string?
local function finish(entry, decision)
  asking = false
  entry.review = nil
  if entry.answered_elsewhere then
    entry.state = 'answered'
    vim.notify(('exo: that approval %s meanwhile; nothing was sent'):format(entry.answered_elsewhere), vim.log.levels.WARN)
  elseif not decision then
    entry.state = 'dismissed'
    vim.notify('exo: the turn still waits for an answer; :Exo approvals asks again', vim.log.levels.WARN)
  else
    respond(entry.request, decision)
  end
  vim.schedule(ask_next)
end

--- Shows the whole call in a buffer that lists the answers.
---@param entry exo.approvals.Entry
---@param prompt string
local function review_whole(entry, prompt)
  local answers = {}
  for _, choice in ipairs(choices) do
    table.insert(answers, { label = choice.label, value = choice.decision })
  end
  local ok, handle = pcall(require('exo.review').open, {
    name = 'approval',
    lines = vim.split(prompt, '\n', { plain = true }),
    answers = answers,
    dismiss = 'decides later (the question stays waiting)',
    on_answer = function(decision)
      finish(entry, decision)
    end,
  })
  if ok then
    entry.review = handle
  else
    vim.notify('exo: cannot show the call: ' .. tostring(handle), vim.log.levels.ERROR)
    finish(entry, nil)
  end
end

---@param key string
local function ask_one(key)
  local entry = entries[key]
  asking = true
  entry.state = 'asking'
  local request = entry.request
  local whole = ('exo: %s: the agent wants to %s'):format(where(request), M.describe(request))
  local prompt, items = whole, choices
  local review = require('exo.review')
  if not review.fits_picker(whole) then
    -- This picker may show a line of the prompt, or its start: it offers
    -- no Allow, only Deny or the whole call (in a buffer that lists the
    -- answers).
    local room = math.max(math.floor(vim.o.columns / 2) - 40, 20)
    prompt = ('exo: %s asks to %s (too long to show here)'):format(where(request), summary(request, room))
    items = { choices[1], { label = 'Show the whole call…', review = true } }
  end
  -- Keys typed before the question (meant for the buffer) stay theirs.
  vim.fn.inputsave()
  local ok, err = pcall(vim.ui.select, items, {
    prompt = prompt,
    kind = 'exo.approval',
    format_item = function(choice)
      return choice.label
    end,
  }, function(choice)
    if choice and choice.review and not entry.answered_elsewhere then
      review_whole(entry, whole)
    else
      finish(entry, choice and choice.decision)
    end
  end)
  vim.fn.inputrestore()
  if not ok then
    asking = false
    entry.state = 'dismissed'
    vim.notify('exo: the approval picker failed: ' .. tostring(err), vim.log.levels.ERROR)
  end
end

--- Asks the first question of the queue, unless one is being asked;
--- `now`: the user asked for it (`:Exo approvals`), so no wait for quiet.
--- An entry leaves the queue only when it is asked: state `queued` means
--- in the queue.
---@param now boolean?
ask_next = function(now)
  if asking then
    return
  end
  while #queue > 0 do
    local entry = entries[queue[1]]
    if entry and entry.state == 'queued' then
      break
    end
    table.remove(queue, 1)
  end
  if #queue == 0 then
    return
  end
  if not now and not entries[queue[1]].requested and not quiet() then
    return defer()
  end
  ask_one(table.remove(queue, 1))
end

---@param entry exo.approvals.Entry
local function enqueue(entry)
  entry.state = 'queued'
  table.insert(queue, key_of(entry.request))
  vim.schedule(ask_next)
end

--- Mode of the `approvals` option: 'notify', 'ask', or false.
---@return 'notify'|'ask'|false
local function mode()
  local option = config.options.approvals
  if option == 'ask' or option == 'notify' then
    return option
  end
  return option and 'notify' or false
end

--- Takes note of an `approval/request`, once however often it arrives:
--- announces it (or, with `approvals = 'ask'`, asks it).
---@param request table `{turn, call_id, tool, arguments, conversation?}`
function M.ask(request)
  local key = key_of(request)
  local entry = entries[key]
  if entry then
    -- The second copy may know the conversation the first did not.
    entry.request.conversation = entry.request.conversation or request.conversation
    return
  end
  entry = { request = request, state = 'waiting' }
  entries[key] = entry
  local how = mode()
  if how == 'ask' then
    return enqueue(entry)
  end
  if how == 'notify' then
    -- After the read loop: the watch's copy (naming the conversation) may
    -- be right behind the runner's.
    vim.schedule(function()
      if entry.state == 'waiting' then
        local head = ('exo: %s asks to '):format(where(entry.request))
        local tail = ' (:Exo approvals)'
        local room = math.max(vim.v.echospace - vim.fn.strdisplaywidth(head .. tail) - 1, 10)
        vim.notify(head .. summary(entry.request, room) .. tail, vim.log.levels.WARN)
      end
    end)
  end
end

--- Drops a question decided elsewhere (its decision was recorded) or
--- whose turn ended.
---@param key string `turn/call_id`
---@param why string? how it went, after "that approval": "was answered elsewhere"
function M.forget(key, why)
  local entry = entries[key]
  if entry and entry.state == 'asking' then
    -- The picker is open; its answer will not be sent.
    entry.answered_elsewhere = why or 'was answered elsewhere'
    if entry.review then
      entry.review.close()
    end
  elseif entry then
    entry.state = 'answered'
  end
end

--- Asks about every question waiting in a conversation (or anywhere, when
--- `ctx` is nil), including those dismissed: the user asked, so the picker
--- opens at once.
---@param ctx { agent: string, conversation: string }?
function M.ask_waiting(ctx)
  local params = ctx and { agent = ctx.agent, conversation = ctx.conversation } or nil
  client.request('approval/list', params, function(err, result)
    if err then
      return vim.notify('exo: approval/list: ' .. tostring(err.message), vim.log.levels.ERROR)
    end
    local approvals = result.approvals or {}
    if #approvals == 0 then
      return vim.notify('exo: no approval is waiting', vim.log.levels.INFO)
    end
    for _, request in ipairs(approvals) do
      local key = key_of(request)
      local entry = entries[key]
      if not entry then
        entry = { request = request, state = 'waiting' }
        entries[key] = entry
      end
      entry.requested = true
      if entry.state ~= 'asking' and entry.state ~= 'queued' then
        entry.answered_elsewhere = nil
        entry.state = 'queued'
        table.insert(queue, key)
      end
    end
    -- A call shown whole in its buffer is being asked: back to it.
    for _, entry in pairs(entries) do
      local win = entry.review and vim.fn.win_findbuf(entry.review.buf)[1]
      if win then
        vim.api.nvim_set_current_win(win)
      end
    end
    -- Called from a command: the user is at the keyboard, waiting for it.
    -- Outside the read callback: the default picker waits for the user.
    vim.schedule(function()
      ask_next(true)
    end)
  end)
end

return M
