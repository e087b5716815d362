-- Approvals: :Exo send to an agent whose policy is `ask`. By default the
-- question is announced and :Exo approvals asks it through vim.ui.select;
-- with approvals = 'ask' the picker opens by itself, but never over keys
-- the user is typing.

local h = require('helpers')
local scripts = require('scripts')

-- A terminal of a usual width: the announcement fits its message area.
vim.o.columns = 160

---@param fx exo.test.Fixture
---@param options table
local function setup(fx, options)
  require('exo').setup(vim.tbl_extend('force', { cmd = h.exo_bin, root = fx.root, timeline = { open = 'vsplit' }, long_prompts = 'picker' }, options))
end

test('a question is announced naming its conversation; :Exo approvals asks it, and an allowed write happens', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  vim.cmd('Exo send please write approved.txt')
  h.wait_line(tl, 'waiting for approval: write_file approved.txt  (ga or :Exo approvals)')
  local announced = h.wait_for('the question to be announced', function()
    return h.notified('(:Exo approvals)')[1]
  end, function()
    return h.dump(tl)
  end)
  h.eq(announced.msg, 'exo: coder/work asks to write_file approved.txt (4 bytes) (:Exo approvals)')
  -- Nothing opened by itself.
  h.eq(#h.selects, 0)
  h.on_select = function(items, opts)
    h.eq(opts.kind, 'exo.approval')
    return h.pick(items, opts, 'Allow once')
  end
  vim.cmd('Exo approvals')
  h.wait_for('approved.txt to be written', function()
    return h.read(fx.workspace .. '/approved.txt') == 'yes\n'
  end, function()
    return h.dump(tl)
  end)
  h.wait_line(tl, 'turn ended: completed')
  h.eq(#h.selects, 1, 'asked once, though the question came to the runner and to the watch')
  h.eq(#h.notified('(:Exo approvals)'), 1, 'announced once')
  local prompt = h.selects[1].opts.prompt
  h.ok(prompt:find('exo: coder/work: the agent wants to write_file approved.txt (4 bytes)', 1, true), prompt)
  h.ok(h.find_line(tl, 'approval write_file call_1_1: allowed (allow_once, by user)'), h.dump(tl))
  h.ok(h.find_line(tl, 'assistant: Wrote approved.txt.'), h.dump(tl))
  -- The question left the tail once answered.
  h.ok(not h.find_line(tl, 'waiting for approval'), h.dump(tl))
end)

test("with approvals = 'ask' the picker opens by itself, Deny first, and a denied write does not happen", function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  setup(fx, { approvals = 'ask' })
  local tl = h.open_timeline()
  h.on_select = function(items, opts)
    h.eq(opts.format_item(items[1]), 'Deny', 'a stray 1<CR> must not allow')
    return h.pick(items, opts, 'Deny')
  end
  vim.cmd('Exo send please write approved.txt')
  h.wait_line(tl, 'turn ended: completed')
  h.ok(h.find_line(tl, 'approval write_file call_1_1: denied (deny, by user)'), h.dump(tl))
  h.eq(h.read(fx.workspace .. '/approved.txt'), nil)
  h.eq(#h.selects, 1)
end)

test("with approvals = 'ask' the picker waits while keys are pending, and leaves them to their buffer", function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  setup(fx, { approvals = 'ask' })
  local tl = h.open_timeline()
  -- Keys the user is typing, not yet read: "3<CR>" would pick the third
  -- item of an inputlist().
  vim.api.nvim_feedkeys('3\r', 'n', false)
  vim.cmd('Exo send please write approved.txt')
  h.wait_line(tl, 'waiting for approval: write_file approved.txt')
  -- Long enough for a scheduled picker to have opened.
  vim.wait(300, function()
    return #h.selects > 0
  end, 10)
  h.eq(#h.selects, 0, 'no picker over pending keys')
  h.eq(vim.fn.getchar(1) ~= 0, true, 'the keys are still pending')
  -- The user's keys are read (by what they were meant for), and the user
  -- goes idle: now the picker opens.
  h.eq(vim.fn.getcharstr(), '3')
  h.eq(vim.fn.getcharstr(), '\r')
  h.on_select = function(items, opts)
    return h.pick(items, opts, 'Allow once')
  end
  vim.api.nvim_exec_autocmds('CursorHold', {})
  h.wait_for('approved.txt to be written', function()
    return h.read(fx.workspace .. '/approved.txt') == 'yes\n'
  end, function()
    return h.dump(tl)
  end)
  h.eq(#h.selects, 1)
end)

test('a multi-line command is shown whole in the question', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_run, files = { ['keep.txt'] = 'kept\n' } })
  local tl = h.open_timeline()
  vim.cmd('Exo send run something')
  local announced = h.wait_for('the question to be announced', function()
    return h.notified('(:Exo approvals)')[1]
  end, function()
    return h.dump(tl)
  end)
  -- One line that fits the message area (more would open the hit-enter
  -- prompt, which takes keys), saying the command has two lines.
  h.ok(not announced.msg:find('\n', 1, true), announced.msg)
  h.ok(vim.fn.strdisplaywidth(announced.msg) <= vim.v.echospace, announced.msg)
  h.ok(announced.msg:find('run a 2-line command: echo harmless\\nrm', 1, true), announced.msg)
  h.on_select = function(items, opts)
    return h.pick(items, opts, 'Deny')
  end
  vim.cmd('Exo approvals')
  h.wait_line(tl, 'turn ended: completed')
  -- The picker shows it whole.
  h.ok(h.selects[1].opts.prompt:find('run this 2-line command:\n  │ echo harmless\n  │ rm -f keep.txt', 1, true), h.selects[1].opts.prompt)
  h.eq(h.read(fx.workspace .. '/keep.txt'), 'kept\n')
end)

test('a dismissed question waits, and :Exo approvals asks it again', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  h.on_select = function()
    return nil
  end
  vim.cmd('Exo send please write approved.txt')
  h.wait_line(tl, 'waiting for approval: write_file approved.txt')
  vim.cmd('Exo approvals')
  h.wait_for('the dismissal to be noted', function()
    return #h.notified('still waits') > 0
  end)
  h.on_select = function(items, opts)
    return h.pick(items, opts, 'Allow once')
  end
  vim.cmd('Exo approvals')
  h.wait_for('approved.txt to be written', function()
    return h.read(fx.workspace .. '/approved.txt') == 'yes\n'
  end, function()
    return h.dump(tl)
  end)
  h.wait_line(tl, 'turn ended: completed')
  h.eq(#h.selects, 2)
end)

test(':Exo approvals twice with a picker that answers later asks every question, once each', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  vim.cmd('Exo send please write approved.txt')
  h.wait_line(tl, 'waiting for approval: write_file approved.txt')
  -- An asynchronous picker (telescope, fzf-lua...): it answers later, and
  -- the user presses ga again meanwhile.
  local pending = {}
  vim.ui.select = function(items, opts, on_choice)
    table.insert(h.selects, { items = items, opts = opts })
    table.insert(pending, function()
      on_choice(h.pick(items, opts, 'Allow once'))
    end)
  end
  vim.cmd('Exo approvals')
  vim.cmd('Exo approvals')
  h.wait_for('the picker', function()
    return #pending > 0
  end)
  vim.wait(200, function()
    return #pending > 1
  end, 10)
  h.eq(#pending, 1, 'one picker for one question')
  pending[1]()
  h.wait_for('approved.txt to be written', function()
    return h.read(fx.workspace .. '/approved.txt') == 'yes\n'
  end, function()
    return h.dump(tl)
  end)
  h.wait_line(tl, 'turn ended: completed')
end)

--- A turn of `coder/work` asking to run a two-line command, with
--- `long_prompts` as given, and the call shown whole in its buffer through
--- the picker's "Show the whole call…".
---@param long_prompts string
---@return exo.test.Fixture fx, exo.Timeline tl, integer buf
local function show_whole_call(long_prompts)
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_run, files = { ['keep.txt'] = 'kept\n' } })
  setup(fx, { long_prompts = long_prompts })
  local tl = h.open_timeline()
  vim.cmd('Exo send run something')
  h.wait_line(tl, 'waiting for approval: shell')
  h.on_select = function(items, opts)
    return h.pick(items, opts, 'Show the whole call…')
  end
  vim.cmd('Exo approvals')
  return fx, tl, h.wait_question('approval')
end

test("a picker replacing Neovim's own is told apart from it", function()
  local review = require('exo.review')
  -- The tests' stub of vim.ui.select stands for telescope, fzf-lua...
  h.eq(review.builtin_select(), false)
  local saved = vim.ui.select
  local runtime = vim.api.nvim_get_runtime_file('lua/vim/ui.lua', false)[1]
  h.ok(runtime, 'the runtime has vim/ui.lua')
  vim.ui.select = assert(loadfile(runtime))().select
  h.eq(review.builtin_select(), true)
  vim.ui.select = saved
end)

test('with a picker that may cut its prompt, a long call is shown whole in a buffer, Enter on an answer gives it', function()
  local fx, tl, buf = show_whole_call('auto')
  -- The picker offers no Allow on what it may not show: Deny, or the call.
  local asked = h.selects[1]
  h.eq(vim.tbl_map(asked.opts.format_item, asked.items), { 'Deny', 'Show the whole call…' })
  h.ok(not asked.opts.prompt:find('\n', 1, true) and asked.opts.prompt:find('too long to show here', 1, true), asked.opts.prompt)
  h.ok(h.text(buf):find('run this 2-line command:\n  │ echo harmless\n  │ rm -f keep.txt', 1, true), h.text(buf))
  h.eq(vim.bo[buf].modifiable, false)
  -- Keys typed to read or copy the text answer nothing, nor does Enter off
  -- an answer: at the end of the text (G), Enter is on the question.
  -- (`A` in a read-only buffer fails with E21: silent!, as the keys run.)
  vim.cmd([[silent! execute "normal jyyAyt\<Esc>ggdd\<CR>G\<CR>\<kEnter>"]])
  vim.wait(100)
  -- :edit reads the question back, rather than emptying the buffer.
  vim.cmd('edit')
  h.ok(h.text(buf):find('  │ rm -f keep.txt', 1, true), h.text(buf))
  h.eq(vim.api.nvim_buf_is_valid(buf), true)
  h.eq(vim.api.nvim_get_current_buf(), buf)
  h.ok(h.find_line(tl, 'waiting for approval: shell'), h.dump(tl))
  -- q leaves the question waiting.
  vim.api.nvim_feedkeys('q', 'x', false)
  h.wait_for('the dismissal to be noted', function()
    return #h.notified('still waits') > 0
  end)
  h.eq(vim.api.nvim_buf_is_valid(buf), false)
  h.eq(h.read(fx.workspace .. '/keep.txt'), 'kept\n')
  h.ok(h.find_line(tl, 'waiting for approval: shell'), h.dump(tl))
  -- Asked again, Enter on Allow once allows it once: the command runs.
  vim.cmd('Exo approvals')
  buf = h.wait_question('approval')
  h.ok(h.text(buf):find('Enter on an answer gives it; q decides later (the question stays waiting).\n  [ Deny ]\n  [ Allow once ]', 1, true), h.text(buf))
  h.answer(buf, 'Allow once')
  h.wait_line(tl, 'turn ended: completed')
  h.ok(h.find_line(tl, 'approval shell call_1_1: allowed (allow_once, by user)'), h.dump(tl))
  h.eq(h.read(fx.workspace .. '/keep.txt'), nil)
  h.eq(vim.api.nvim_buf_is_valid(buf), false)
end)

test('a call shown in its buffer and answered elsewhere closes the buffer, sending nothing', function()
  local fx, tl, buf = show_whole_call('buffer')
  local err, list = h.await('the waiting approvals', function(done)
    require('exo.client').request('approval/list', {}, done)
  end)
  h.eq(err, nil)
  local request = list.approvals[1]
  -- Another client denies it.
  h.await('the answer from elsewhere', function(done)
    require('exo.client').request('approval/respond', { turn = request.turn, call_id = request.call_id, decision = 'deny' }, done)
  end)
  h.wait_for('the buffer to close', function()
    return not vim.api.nvim_buf_is_valid(buf)
  end)
  h.wait_for('the note', function()
    return #h.notified('that approval was answered elsewhere meanwhile; nothing was sent') > 0
  end)
  h.wait_line(tl, 'turn ended: completed')
  h.ok(h.find_line(tl, 'approval shell call_1_1: denied (deny, by user)'), h.dump(tl))
  h.eq(h.read(fx.workspace .. '/keep.txt'), 'kept\n')
end)

test('a call shown in its buffer whose turn is cancelled closes the buffer, saying so', function()
  local fx, _, buf = show_whole_call('buffer')
  vim.cmd('Exo cancel')
  h.wait_for('the buffer to close', function()
    return not vim.api.nvim_buf_is_valid(buf)
  end)
  local note = h.wait_for('the note', function()
    return h.notified('meanwhile; nothing was sent')[1]
  end)
  h.ok(not note.msg:find('answered elsewhere', 1, true), note.msg)
  h.eq(h.read(fx.workspace .. '/keep.txt'), 'kept\n')
  -- The turn's end is said without an empty reason.
  local ended = h.wait_for('the turn\'s end', function()
    return h.notified('exo: turn cancelled')[1]
  end)
  h.eq(ended.msg, 'exo: turn cancelled')
end)

test('setup refuses an unknown approvals, daemon or long_prompts option', function()
  local ok, err = pcall(require('exo').setup, { long_prompts = 'telescope' })
  h.ok(not ok and tostring(err):find('long_prompts must be "auto", "picker" or "buffer"', 1, true), tostring(err))
  ok, err = pcall(require('exo').setup, { approvals = 'always' })
  h.ok(not ok and tostring(err):find('approvals must be', 1, true), tostring(err))
  ok, err = pcall(require('exo').setup, { daemon = 'fork' })
  h.ok(not ok and tostring(err):find('daemon must be', 1, true), tostring(err))
end)
