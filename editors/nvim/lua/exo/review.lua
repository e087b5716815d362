--- *exo.review* Questions too long for a picker, shown whole in a buffer
--- that lists their answers.
---
--- Features:
--- - `fits_picker(prompt)` says whether `vim.ui.select` can be trusted to
---   show a question's prompt whole. Neovim's own one prints every line of
---   it; pickers that replace it (telescope, fzf-lua, dressing, snacks) show
---   a title of one line, cut to the width of their window. An approval
---   given, or a rewind confirmed, on the visible half of a question is not
---   an informed answer.
--- - `open()` shows a question in a read-only scratch buffer, in a tab of
---   its own, its answers listed above it: Enter on an answer's line gives
---   it; `q` or closing the buffer answers nothing. No letter answers, so
---   keys typed to read or copy the text (`jyy`, `A`) never do, and the
---   end of the text (where `G` or the mouse wheel go) is no answer.
---
--- Key design ideas:
--- - The `long_prompts` option decides: 'picker' trusts the picker,
---   'buffer' sends every long question to a buffer, 'auto' (the default)
---   trusts Neovim's own picker only.

local config = require('exo.config')

local M = {}

--- Whether `vim.ui.select` is Neovim's own (defined in its runtime's
--- `vim/ui.lua`), not a plugin's replacement.
---@return boolean
function M.builtin_select()
  local info = debug.getinfo(vim.ui.select, 'S')
  return info ~= nil and type(info.source) == 'string' and info.source:match('vim/ui%.lua$') ~= nil
end

--- Whether a question is short for any picker: one line, at most half the
--- editor's width.
---@param prompt string
---@return boolean
function M.short(prompt)
  return not prompt:find('\n', 1, true) and vim.fn.strdisplaywidth(prompt) <= math.floor(vim.o.columns / 2)
end

--- Whether `prompt` may be asked through `vim.ui.select`.
---@param prompt string
---@return boolean
function M.fits_picker(prompt)
  local how = config.options.long_prompts
  if how == 'picker' or M.short(prompt) then
    return true
  end
  return how ~= 'buffer' and M.builtin_select()
end

---@class exo.review.Answer
---@field label string
---@field value any

---@class exo.review.Handle
---@field buf integer
---@field close fun() closes the buffer, answering nothing

---@class exo.review.Options
---@field name string the buffer's name (made unique)
---@field lines string[] the question, whole
---@field answers exo.review.Answer[] the safe one first
---@field dismiss string what `q` (or closing the buffer) does, as the hint says it
---@field on_answer fun(value: any) called once: with the chosen value, or nil (`q`, the buffer closed)

local opened = 0

--- Shows a question in a buffer of its own, in a new tab: a hint, the
--- answers (the safe one first), then the question. Enter on an answer's
--- line gives it, `q` or closing the buffer gives none. No single key that
--- reading or copying text uses answers (`jyy`, `A`, `y`), and reading to
--- the end (`G`, the mouse wheel) lands on the question, not on an answer.
--- Raises, having asked nothing, when no tab can be opened (in the
--- command-line window).
---@param opts exo.review.Options
---@return exo.review.Handle
function M.open(opts)
  local buf = vim.api.nvim_create_buf(false, true)
  opened = opened + 1
  -- Not `exo://`: that scheme opens timelines (`:edit exo://AGENT/CONV`).
  pcall(vim.api.nvim_buf_set_name, buf, ('exo-question://%s/%d'):format(opts.name, opened))
  local lines = { ('Enter on an answer gives it; q %s.'):format(opts.dismiss) }
  ---@type table<integer, exo.review.Answer>
  local at_line = {}
  for _, answer in ipairs(opts.answers) do
    table.insert(lines, '  [ ' .. answer.label .. ' ]')
    at_line[#lines] = answer
  end
  table.insert(lines, '')
  vim.list_extend(lines, opts.lines)
  local function fill()
    vim.bo[buf].modifiable = true
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    vim.bo[buf].modifiable = false
    vim.bo[buf].modified = false
  end
  fill()
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = 'exo-review'

  local done = false
  ---@param value any
  ---@param wiped boolean? the buffer is being wiped already
  local function finish(value, wiped)
    if done then
      return
    end
    done = true
    if not wiped and vim.api.nvim_buf_is_valid(buf) then
      pcall(vim.api.nvim_buf_delete, buf, { force = true })
    end
    vim.schedule(function()
      opts.on_answer(value)
    end)
  end
  local function choose()
    local answer = at_line[vim.api.nvim_win_get_cursor(0)[1]]
    if answer then
      finish(answer.value)
    else
      vim.notify(('exo: move to an answer ([ … ]) and press Enter; q %s'):format(opts.dismiss), vim.log.levels.INFO)
    end
  end
  for _, lhs in ipairs({ '<CR>', '<kEnter>', '<2-LeftMouse>' }) do
    vim.keymap.set('n', lhs, choose, { buffer = buf, nowait = true, desc = 'exo: give the answer under the cursor' })
  end
  vim.keymap.set('n', 'q', function()
    finish(nil)
  end, { buffer = buf, nowait = true, desc = 'exo: ' .. opts.dismiss })
  -- `:edit` would empty a buffer without a file: it reads the question
  -- back instead.
  vim.api.nvim_create_autocmd('BufReadCmd', {
    buffer = buf,
    callback = fill,
  })
  vim.api.nvim_create_autocmd('BufWipeout', {
    buffer = buf,
    once = true,
    callback = function()
      finish(nil, true)
    end,
  })
  local shown, err = pcall(vim.cmd, ('tab sbuffer %d'):format(buf))
  if not shown then
    -- (In the command-line window, say.) Nothing was asked: no answer.
    done = true
    pcall(vim.api.nvim_buf_delete, buf, { force = true })
    error(err, 0)
  end
  local win = vim.api.nvim_get_current_win()
  for option, value in pairs({ wrap = true, number = false, relativenumber = false, list = false }) do
    vim.api.nvim_set_option_value(option, value, { scope = 'local', win = win })
  end
  vim.api.nvim_win_set_cursor(win, { 1, 0 })
  return {
    buf = buf,
    close = function()
      finish(nil)
    end,
  }
end

return M
