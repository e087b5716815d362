-- A turn's diff: its turn_start and turn_end snapshots (read with
-- snapshot/read) side by side in diff mode, or its start against the disk.

local h = require('helpers')
local scripts = require('scripts')

--- The windows of the current tab, with their buffers' lines.
---@return { win: integer, buf: integer, name: string, lines: string[], diff: boolean }[]
local function tab_windows()
  local out = {}
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    local buf = vim.api.nvim_win_get_buf(win)
    table.insert(out, {
      win = win,
      buf = buf,
      name = vim.api.nvim_buf_get_name(buf),
      lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false),
      diff = vim.wo[win].diff,
    })
  end
  return out
end

test(':Exo diff shows the last turn\'s change to a file in two diff windows', function()
  h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  h.open_timeline()
  local tabs = #vim.api.nvim_list_tabpages()
  vim.cmd('Exo diff')
  h.wait_for('a diff tab', function()
    return #vim.api.nvim_list_tabpages() == tabs + 1
  end, function()
    return vim.inspect(h.notifications)
  end)
  local windows = tab_windows()
  h.eq(#windows, 2)
  h.ok(windows[1].diff and windows[2].diff, 'both windows are in diff mode')
  h.eq(windows[1].lines, { 'first' })
  h.eq(windows[2].lines, { 'second' })
  h.ok(windows[1].name:match('^exo://snapshot/%x+/notes%.txt$'), windows[1].name)
  h.ok(windows[2].name:match('^exo://snapshot/%x+/notes%.txt$'), windows[2].name)
  h.ok(windows[1].name ~= windows[2].name)
end)

test('the diff of a turn that created a file shows it absent before', function()
  h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  local tl = h.open_timeline()
  -- The first turn, from the timeline's cursor.
  local win = vim.fn.win_findbuf(tl.buf)[1]
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_win_set_cursor(win, { h.find_line(tl, 'user: one'), 0 })
  vim.cmd('Exo diff')
  h.wait_for('a diff tab', function()
    return #vim.api.nvim_list_tabpages() == 2
  end, function()
    return vim.inspect(h.notifications)
  end)
  local windows = tab_windows()
  h.eq(#windows, 2)
  h.eq(windows[1].lines, { '' })
  h.eq(vim.b[windows[1].buf].exo_snapshot.absent, true)
  h.eq(windows[2].lines, { 'first' })
end)

test(':Exo diff disk compares the turn\'s start with the file on disk', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  h.open_timeline()
  h.write(fx.workspace .. '/notes.txt', 'second\nand mine\n')
  vim.cmd('Exo diff disk')
  h.wait_for('a diff tab', function()
    return #vim.api.nvim_list_tabpages() == 2
  end, function()
    return vim.inspect(h.notifications)
  end)
  local windows = tab_windows()
  h.eq(#windows, 2)
  h.ok(windows[1].diff and windows[2].diff, 'both windows are in diff mode')
  h.eq(windows[1].lines, { 'first' })
  -- The real file, editable, so :diffget can take hunks back.
  h.eq(windows[2].name, fx.workspace .. '/notes.txt')
  h.eq(windows[2].lines, { 'second', 'and mine' })
  h.eq(vim.bo[windows[2].buf].buftype, '')
end)
