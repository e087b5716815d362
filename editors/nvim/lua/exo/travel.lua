--- *exo.travel* Rewind, redo and fork, without losing the user's work.
---
--- Features:
--- - A rewind (or a redo: a rewind to a branch head left behind) is tried
---   first as a dry run (`conversation/rewind` with `dry_run`), which says
---   which files it would write and which changed on disk since the latest
---   snapshot.
--- - It is refused, naming the paths, when it would lose work: a modified
---   buffer whose file it would write (unsaved), or a file changed since
---   the latest snapshot (unsnapshotted; exo would refuse it too).
--- - Otherwise the files that will change are shown for confirmation, and
---   the rewind is made with `expected_head`, so nothing that happened in
---   between is overwritten; buffers of rewritten files are reloaded.
--- - A fork can go into a new folder, where the fork point's files are
---   written; the user's workspace is not touched.

local client = require('exo.client')
local config = require('exo.config')
local render = require('exo.render')

local M = {}

---@param message string
---@param level integer?
local function notify(message, level)
  vim.notify('exo: ' .. message, level or vim.log.levels.INFO)
end

--- `path` with every symlink resolved, also when it (or some of its
--- parents) does not exist yet: the nearest existing ancestor is resolved
--- and the rest appended, so a new file under a symlinked folder still
--- compares equal to the workspace's real path.
---@param path string
---@return string
local function canonical(path)
  path = vim.fs.normalize(path, { expand_env = false })
  local rest = {}
  local dir = path
  while dir and dir ~= '' do
    local real = vim.uv.fs_realpath(dir)
    if real then
      if #rest == 0 then
        return real
      end
      return (real == '/' and '' or real) .. '/' .. table.concat(rest, '/')
    end
    local parent = vim.fs.dirname(dir)
    if parent == dir then
      break
    end
    table.insert(rest, 1, vim.fs.basename(dir))
    dir = parent
  end
  return path
end

--- Modified buffers whose file is one of `paths` (workspace-relative).
---@param workspace string
---@param paths string[]
---@return string[] the paths, workspace-relative
function M.unsaved(workspace, paths)
  local wanted = {}
  for _, path in ipairs(paths) do
    wanted[path] = true
  end
  local root = canonical(workspace)
  local found = {}
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.bo[buf].modified and vim.bo[buf].buftype == '' then
      local name = vim.api.nvim_buf_get_name(buf)
      if name ~= '' then
        local path = canonical(name)
        if path:sub(1, #root + 1) == root .. '/' then
          local relative = path:sub(#root + 2)
          if wanted[relative] then
            table.insert(found, relative)
          end
        end
      end
    end
  end
  table.sort(found)
  return found
end

--- Reloads the unmodified buffers of rewritten files from disk; says which
--- buffers hold a file the rewind deleted (writing one would bring it
--- back).
---@param workspace string
---@param changes { path: string }[]
local function reload_buffers(workspace, changes)
  local root = canonical(workspace)
  local changed = {}
  for _, change in ipairs(changes) do
    changed[root .. '/' .. change.path] = change.path
  end
  local orphaned = {}
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.bo[buf].buftype == '' then
      local name = vim.api.nvim_buf_get_name(buf)
      local path = name ~= '' and changed[canonical(name)]
      if path and not vim.uv.fs_stat(name) then
        table.insert(orphaned, render.escape(path))
      elseif path and not vim.bo[buf].modified then
        vim.api.nvim_buf_call(buf, function()
          vim.cmd('silent! edit')
        end)
      end
    end
  end
  if #orphaned > 0 then
    table.sort(orphaned)
    notify('the rewind deleted the files of these buffers (writing one brings it back): ' .. table.concat(orphaned, ', '),
      vim.log.levels.WARN)
  end
end

---@param changes { path: string, change: string }[]
---@return string
local function list_changes(changes)
  local lines = {}
  for _, change in ipairs(changes) do
    table.insert(lines, ('  %-9s %s'):format(change.change, render.escape(change.path)))
  end
  return table.concat(lines, '\n')
end

--- Asks `question` unless confirmation is off.
---@param question string
---@param yes string the label of the choice that goes ahead
---@param on_yes fun()
---@param on_no fun() cancelled
local function confirm(question, yes, on_yes, on_no)
  if not config.options.confirm then
    return on_yes()
  end
  local review = require('exo.review')
  if not review.fits_picker(question) then
    -- A picker replacing Neovim's own may show one line of the question:
    -- the files that will change are shown whole in a buffer instead.
    local ok, err = pcall(review.open, {
      name = 'confirm',
      lines = vim.split(question, '\n', { plain = true }),
      answers = { { label = 'Cancel', value = false }, { label = yes, value = true } },
      dismiss = 'cancels',
      on_answer = function(go)
        if go then
          on_yes()
        else
          on_no()
        end
      end,
    })
    if not ok then
      notify('cannot show the question, so nothing was done: ' .. tostring(err), vim.log.levels.ERROR)
      on_no()
    end
    return
  end
  vim.ui.select({ yes, 'Cancel' }, { prompt = question, kind = 'exo.confirm' }, function(choice)
    if choice == yes then
      on_yes()
    else
      on_no()
    end
  end)
end

---@class exo.travel.Refusal
---@field action string
---@field unsaved string[]
---@field unsnapshotted string[]

--- The last refusal, for whoever wants the paths (the tests do).
---@type exo.travel.Refusal?
M.last_refusal = nil

---@param action string
---@param unsaved string[]
---@param unsnapshotted string[]
local function refuse(action, unsaved, unsnapshotted)
  M.last_refusal = { action = action, unsaved = unsaved, unsnapshotted = unsnapshotted }
  local lines = { ('%s refused: it would overwrite work that exo cannot bring back:'):format(action) }
  for _, path in ipairs(unsaved) do
    table.insert(lines, '  unsaved in this editor:             ' .. render.escape(path))
  end
  for _, path in ipairs(unsnapshotted) do
    table.insert(lines, '  changed since the latest snapshot:  ' .. render.escape(path))
  end
  table.insert(lines, 'Save (or undo) your edits and take a snapshot (:Exo snapshot), then try again;')
  table.insert(lines, (':Exo! %s overwrites them (a safety snapshot keeps what is on disk).'):format(action))
  notify(table.concat(lines, '\n'), vim.log.levels.ERROR)
end

--- Rewinds the conversation to an event, after a dry run and a check that
--- no unsaved or unsnapshotted work would be lost.
---@param ctx table `{agent, conversation, workspace, label}`
---@param to string event id
---@param opts { force: boolean?, action: string?, describe: string? }
---@param callback fun(err: string?, result: table?)?
function M.rewind(ctx, to, opts, callback)
  callback = callback or function() end
  local action = opts.action or 'rewind'
  client.ensure(function(connect_err)
    if connect_err then
      notify(action .. ': ' .. connect_err, vim.log.levels.ERROR)
      return callback(connect_err)
    end
    if not client.serves('snapshot/read') then
      -- `dry_run` came with `snapshot/read`; a daemon without them would
      -- ignore `dry_run` (unknown params are ignored) and rewind at once.
      local message = 'this exo daemon cannot preview a rewind (no dry_run); update exo'
      notify(action .. ': ' .. message, vim.log.levels.ERROR)
      return callback(message)
    end
    M.rewind_previewed(ctx, to, opts, callback)
  end)
end

--- `M.rewind` once connected to a daemon that knows `dry_run`.
---@param ctx table
---@param to string
---@param opts { force: boolean?, action: string?, describe: string? }
---@param callback fun(err: string?, result: table?)
function M.rewind_previewed(ctx, to, opts, callback)
  local action = opts.action or 'rewind'
  local params = {
    agent = ctx.agent,
    conversation = ctx.conversation,
    to = to,
    dry_run = true,
    force = opts.force or nil,
  }
  client.request('conversation/rewind', params, function(err, preview)
    if err then
      local message = err.data and err.data.code == 'busy' and (err.message .. ' (:Exo cancel stops it)') or err.message
      notify(action .. ': ' .. tostring(message), vim.log.levels.ERROR)
      return callback(message)
    end
    if preview.event ~= nil then
      -- A daemon that does not know `dry_run` ignores it and rewinds.
      notify(action .. ': this exo daemon does not know dry_run and rewound at once; update exo', vim.log.levels.WARN)
      return callback(nil, preview)
    end
    local head = preview.conversation.head
    if head == to then
      notify(action .. ': the conversation is already there')
      return callback(nil, preview)
    end
    local files = preview.files
    local changes = files and files.changes or {}
    local paths = vim.tbl_map(function(change)
      return change.path
    end, changes)
    local unsaved, unsnapshotted = {}, {}
    if not opts.force and ctx.workspace then
      unsaved = M.unsaved(ctx.workspace, paths)
      unsnapshotted = vim.tbl_map(function(conflict)
        return conflict.path
      end, files and files.conflicts or {})
    end
    if #unsaved > 0 or #unsnapshotted > 0 then
      refuse(action, unsaved, unsnapshotted)
      return callback('refused', nil)
    end
    M.last_refusal = nil
    local what = opts.describe or ('to ' .. render.short(to))
    local question
    if #changes > 0 then
      question = ('%s %s? These files will change:\n%s'):format(action, what, list_changes(changes))
    elseif files then
      question = ('%s %s? No file will change.'):format(action, what)
    else
      question = ('%s %s? Files are left as they are (no snapshot to restore).'):format(action, what)
    end
    confirm(question, (action:gsub('^%l', string.upper)), function()
      -- The picker may have stayed open while the user edited on: what the
      -- dry run found clean is checked again.
      if not opts.force and ctx.workspace then
        local now_unsaved = M.unsaved(ctx.workspace, paths)
        if #now_unsaved > 0 then
          refuse(action, now_unsaved, {})
          return callback('refused', nil)
        end
      end
      local real = {
        agent = ctx.agent,
        conversation = ctx.conversation,
        to = to,
        expected_head = head,
        force = opts.force or nil,
      }
      client.request('conversation/rewind', real, function(rewind_err, result)
        if rewind_err then
          local code = rewind_err.data and rewind_err.data.code
          local hint = code == 'conflict' and ' (nothing was changed)' or ''
          notify(action .. ': ' .. tostring(rewind_err.message) .. hint, vim.log.levels.ERROR)
          return callback(rewind_err.message, nil)
        end
        local written = result.files and result.files.changes or {}
        if ctx.workspace and #written > 0 then
          reload_buffers(ctx.workspace, written)
        end
        local left_alone = result.files and result.files.conflicts or {}
        if #left_alone > 0 then
          notify(('%s done, but these files changed meanwhile and were left alone:\n%s'):format(action, list_changes(left_alone)),
            vim.log.levels.WARN)
        else
          notify(('%s done: %d file%s restored'):format(action, #written, #written == 1 and '' or 's'))
        end
        callback(nil, result)
      end)
    end, function()
      callback('cancelled', nil)
    end)
  end)
end

--- Whether a branch holds more than the markers of a rewind: a `rewound`
--- event and the snapshots around it. A redo leaves such a branch behind
--- (the rewind it undid); going back there would undo the redo.
---@param branch table
---@return boolean
local function holds_work(branch)
  for _, step in ipairs(branch.steps) do
    if step.kind == 'turn' then
      return true
    elseif step.kind == 'events' then
      for _, kind in ipairs(step.kinds or {}) do
        if kind ~= 'workspace_snapshot' then
          return true
        end
      end
    end
  end
  return false
end

--- The branches a redo can go back to: those left behind that hold work,
--- most recently left first.
---@param tree table `conversation/tree`'s result
---@return table[]
function M.redo_candidates(tree)
  local candidates = {}
  for i = #tree.branches, 1, -1 do
    local branch = tree.branches[i]
    if not branch.current and holds_work(branch) then
      table.insert(candidates, branch)
    end
  end
  return candidates
end

---@param branch table
---@return string
local function describe_branch(branch)
  local last = branch.steps[#branch.steps]
  if last.kind == 'turn' then
    return ('%s: turn "%s" (%s)'):format(render.short(branch.head), tostring(last.prompt or ''), tostring(last.status or 'cut'))
  elseif last.kind == 'events' then
    return ('%s: %s'):format(render.short(branch.head), tostring(last.text or table.concat(last.kinds or {}, ', ')))
  end
  return ('%s: %s'):format(render.short(branch.head), tostring(last.kind))
end

--- Goes back to a branch a rewind left behind.
---@param ctx table
---@param opts { force: boolean? }
---@param callback fun(err: string?, result: table?)?
function M.redo(ctx, opts, callback)
  callback = callback or function() end
  client.request('conversation/tree', { agent = ctx.agent, conversation = ctx.conversation }, function(err, tree)
    if err then
      notify('redo: ' .. tostring(err.message), vim.log.levels.ERROR)
      return callback(err.message)
    end
    local candidates = M.redo_candidates(tree)
    local function go(branch)
      M.rewind(ctx, branch.head, { force = opts.force, action = 'redo', describe = 'to ' .. describe_branch(branch) }, callback)
    end
    if #candidates == 0 then
      notify('nothing to redo: no branch was left behind')
      return callback('nothing to redo')
    elseif #candidates == 1 then
      return go(candidates[1])
    end
    vim.ui.select(candidates, { prompt = 'exo: redo to which branch?', kind = 'exo.redo', format_item = describe_branch }, function(branch)
      if branch then
        go(branch)
      end
    end)
  end)
end

--- The `workspace_snapshot` event in effect at `at` (the head when nil):
--- `at` itself when it is one, else the latest before it.
---@param ctx table
---@param at string?
---@param callback fun(err: table?, snapshot: table?)
local function snapshot_in_effect(ctx, at, callback)
  local function latest(before)
    local params = { agent = ctx.agent, conversation = ctx.conversation, before = before, desc = true, kind = 'workspace_snapshot', limit = 1 }
    client.request('events/list', params, function(err, page)
      if err then
        return callback(err)
      end
      local found = page.events[1]
      callback(nil, found and found.kind == 'workspace_snapshot' and found or nil)
    end)
  end
  if not at then
    return latest(nil)
  end
  client.request('events/get', { agent = ctx.agent, conversation = ctx.conversation, event = at }, function(err, event)
    if err then
      return callback(err)
    end
    if event.kind == 'workspace_snapshot' then
      return callback(nil, event)
    end
    latest(at)
  end)
end

--- Says which files a fork into a new folder will hold, against the
--- conversation's workspace: `callback(nil, text)`, or `callback(reason)`
--- when the fork cannot go there.
---@param ctx table
---@param at string?
---@param callback fun(err: string?, text: string?)
function M.fork_preview(ctx, at, callback)
  snapshot_in_effect(ctx, at, function(err, snapshot)
    if err then
      if err.data and err.data.code == 'not_found' then
        return callback('that point is not on the conversation\'s current history, so exo cannot show which files it holds (:Exo redo to its branch first)')
      end
      return callback(tostring(err.message))
    end
    if not snapshot then
      return callback('no snapshot is in effect at that point, so there are no files to fork into a folder')
    end
    local params = { agent = ctx.agent, conversation = ctx.conversation, from = snapshot.commit }
    client.request('snapshot/diff', params, function(diff_err, diff)
      if diff_err then
        return callback(tostring(diff_err.message))
      end
      local workspace = ctx.workspace and render.escape(ctx.workspace) or 'the workspace'
      if #diff.changes == 0 then
        return callback(nil, ('The new folder will hold the same files as %s.'):format(workspace))
      end
      callback(nil, ('The new folder will hold the snapshot at that point, which differs from %s in:\n%s'):format(
        workspace, list_changes(diff.changes)))
    end)
  end)
end

--- Forks the conversation at an event, into `workspace` when given (a new
--- or empty folder): the question first says which files the folder will
--- hold. A fork at the head is made at the head the question was about,
--- whatever happened meanwhile.
---@param ctx table
---@param at string? event id; the head when nil
---@param workspace string? absolute folder
---@param callback fun(err: string?, conversation: table?)?
function M.fork(ctx, at, workspace, callback)
  callback = callback or function() end
  local function cancelled()
    callback('cancelled')
  end
  local function ask(point)
    local where = ('%s/%s%s'):format(ctx.agent_slug or '', ctx.slug or '', at and (' at ' .. render.short(point)) or '')
    local function go()
      local params = { agent = ctx.agent, conversation = ctx.conversation, at = point, workspace = workspace }
      client.request('conversation/fork', params, function(err, conversation)
        if err then
          notify('fork: ' .. tostring(err.message), vim.log.levels.ERROR)
          return callback(err.message)
        end
        notify(('forked into %s/%s%s'):format(ctx.agent_slug or '', conversation.slug, workspace and (' in ' .. workspace) or ''))
        callback(nil, conversation)
      end)
    end
    if not workspace then
      local question = ('fork %s? The fork shares this workspace; no file changes.'):format(where)
      return confirm(question, 'Fork', go, cancelled)
    end
    M.fork_preview(ctx, point, function(err, preview)
      if err then
        notify(('fork of %s into %s refused: %s'):format(where, render.escape(workspace), err), vim.log.levels.ERROR)
        return callback(err)
      end
      local question = ('fork %s into %s? %s\nYour workspace is not touched.'):format(where, render.escape(workspace), preview)
      confirm(question, 'Fork', go, cancelled)
    end)
  end
  if at then
    return ask(at)
  end
  client.request('conversation/get', { agent = ctx.agent, conversation = ctx.conversation }, function(err, conversation)
    if err then
      notify('fork: ' .. tostring(err.message), vim.log.levels.ERROR)
      return callback(err.message)
    end
    ask(conversation.head)
  end)
end

return M
