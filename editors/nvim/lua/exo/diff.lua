--- *exo.diff* A turn's changes to one file, side by side in diff mode.
---
--- Features:
--- - The turn's `turn_start` snapshot on the left, its `turn_end` snapshot
---   on the right (both read with `snapshot/read`), or the file as it is on
---   disk on the right: the real file, so `:diffget` takes hunks back.
--- - A turn still running has no `turn_end` snapshot: it is compared with
---   the disk.
--- - The changed paths come from `snapshot/diff`; with more than one, the
---   path is picked with `vim.ui.select`.

local client = require('exo.client')

local M = {}

--- Splits file bytes into buffer lines (a last newline ends the last line).
---@param bytes string
---@return string[]
local function to_lines(bytes)
  local lines = vim.split(bytes, '\n', { plain = true })
  if lines[#lines] == '' then
    table.remove(lines)
  end
  return lines
end

--- A scratch buffer holding a file as a snapshot has it.
---@param commit string
---@param path string
---@param bytes string?
---@return integer
local function snapshot_buffer(commit, path, bytes)
  local name = ('exo://snapshot/%s/%s'):format(commit:sub(1, 12), path)
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, bytes and to_lines(bytes) or {})
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  local filetype = vim.filetype.match({ filename = path, buf = buf })
  if filetype then
    vim.bo[buf].filetype = filetype
  end
  vim.b[buf].exo_snapshot = { commit = commit, path = path, absent = bytes == nil }
  return buf
end

---@param ctx table
---@param commit string
---@param path string
---@param callback fun(err: string?, bytes: string?)
local function read(ctx, commit, path, callback)
  client.request('snapshot/read', { agent = ctx.agent, conversation = ctx.conversation, snapshot = commit, path = path }, function(err, result)
    if err then
      return callback(err.message, nil)
    end
    if result.content_base64 == nil then
      return callback(nil, nil)
    end
    callback(nil, vim.base64.decode(result.content_base64))
  end)
end

--- Opens a tab with `path` at `from` (left) and at `to`, or on disk when
--- `to` is nil (right), both in diff mode.
---@param ctx table `{agent, conversation, workspace}`
---@param from string commit
---@param to string? commit, nil for the disk
---@param path string
---@param callback fun(err: string?)?
function M.show(ctx, from, to, path, callback)
  callback = callback or function(err)
    if err then
      vim.notify('exo: ' .. err, vim.log.levels.ERROR)
    end
  end
  local results, remaining, failed = {}, to and 2 or 1, nil
  local function done()
    if failed then
      return callback(failed)
    end
    vim.cmd('tabnew')
    local left = snapshot_buffer(from, path, results.from)
    vim.api.nvim_win_set_buf(0, left)
    vim.cmd('diffthis')
    vim.cmd('rightbelow vsplit')
    if to then
      vim.api.nvim_win_set_buf(0, snapshot_buffer(to, path, results.to))
    else
      vim.cmd('edit ' .. vim.fn.fnameescape(ctx.workspace .. '/' .. path))
    end
    vim.cmd('diffthis')
    callback(nil)
  end
  local function collect(which)
    return function(err, bytes)
      if err then
        failed = failed or ('snapshot/read ' .. path .. ': ' .. err)
      end
      results[which] = bytes
      remaining = remaining - 1
      if remaining == 0 then
        done()
      end
    end
  end
  read(ctx, from, path, collect('from'))
  if to then
    read(ctx, to, path, collect('to'))
  end
end

--- Shows what a turn changed: picks its snapshots, then the path.
---@param ctx table `{agent, conversation, workspace}`
---@param turn string turn id
---@param opts { disk: boolean?, path: string? }
---@param callback fun(err: string?)?
function M.turn(ctx, turn, opts, callback)
  callback = callback or function(err)
    if err then
      vim.notify('exo: ' .. err, vim.log.levels.ERROR)
    end
  end
  if not ctx.workspace then
    return callback('this conversation has no workspace: no files to compare')
  end
  local params = { agent = ctx.agent, conversation = ctx.conversation, turn = turn, kind = 'workspace_snapshot', limit = 1000 }
  client.request('events/list', params, function(err, page)
    if err then
      return callback('events/list: ' .. tostring(err.message))
    end
    local start, finish
    for _, event in ipairs(page.events or {}) do
      if event.reason == 'turn_start' then
        start = start or event
      elseif event.reason == 'turn_end' then
        finish = event
      end
    end
    if not start then
      return callback('turn ' .. turn .. ' has no turn_start snapshot')
    end
    local to = (not opts.disk and finish) and finish.commit or nil
    client.request('snapshot/diff', { agent = ctx.agent, conversation = ctx.conversation, from = start.commit, to = to }, function(diff_err, diff)
      if diff_err then
        return callback('snapshot/diff: ' .. tostring(diff_err.message))
      end
      local paths = vim.tbl_map(function(change)
        return change.path
      end, diff.changes or {})
      local function show(path)
        M.show(ctx, start.commit, to, path, callback)
      end
      if opts.path then
        return show(opts.path)
      end
      if #paths == 0 then
        return callback(to and 'the turn changed no file' or 'no file differs from the turn\'s start')
      end
      if #paths == 1 then
        return show(paths[1])
      end
      local labels = {}
      for _, change in ipairs(diff.changes) do
        labels[change.path] = change.change
      end
      vim.ui.select(paths, {
        prompt = 'exo: which file?',
        kind = 'exo.diff',
        format_item = function(path)
          return ('%-9s %s'):format(labels[path], path)
        end,
      }, function(path)
        if path then
          show(path)
        end
      end)
    end)
  end)
end

return M
