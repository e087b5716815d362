-- Rewind, redo and fork through the plugin's commands: the files follow,
-- the timeline shows it, and work that would be lost stops them.

local h = require('helpers')
local scripts = require('scripts')

--- Answers the confirmation of a rewind, redo or fork with `yes`.
---@param yes string
local function confirm(yes)
  h.on_select = function(items, opts)
    h.eq(opts.kind, 'exo.confirm')
    return h.pick(items, opts, yes)
  end
end

---@param fx exo.test.Fixture
---@return string
local function head(fx)
  return h.exo_json(fx, { 'conversation', 'show', 'coder', 'work' }).head
end

test(':Exo rewind undoes the last turn: the file changes and the timeline shows the rewind', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  h.eq(h.read(fx.workspace .. '/notes.txt'), 'second\n')
  local tl = h.open_timeline()
  confirm('Rewind')
  vim.cmd('Exo rewind')
  h.wait_for('notes.txt to be restored', function()
    return h.read(fx.workspace .. '/notes.txt') == 'first\n'
  end, function()
    return h.dump(tl)
  end)
  h.wait_line(tl, 'rewound to')
  -- The preview named the file.
  h.eq(#h.selects, 1)
  h.ok(h.selects[1].opts.prompt:find('modified  notes.txt', 1, true), h.selects[1].opts.prompt)
  -- The second turn left the timeline: it mirrors the history.
  h.wait_for('the second turn to leave the timeline', function()
    return not h.find_line(tl, 'user: two')
  end, function()
    return h.dump(tl)
  end)
  h.ok(h.find_line(tl, 'user: one'), h.dump(tl))
  local events = h.events(fx)
  h.eq(events[#events - 1].kind, 'rewound')
end)

test('a rewind over an unsnapshotted edit is refused, naming the path, and changes nothing', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  local tl = h.open_timeline()
  h.write(fx.workspace .. '/notes.txt', 'my own edit\n')
  local before = head(fx)
  local result
  require('exo').rewind({}, function(err, res)
    result = { err = err, res = res }
  end)
  h.wait_for('the rewind to answer', function()
    return result
  end)
  h.eq(result.err, 'refused')
  local refusal = require('exo.travel').last_refusal
  h.eq(refusal.unsnapshotted, { 'notes.txt' })
  h.eq(refusal.unsaved, {})
  local shown = h.notified('rewind refused')
  h.eq(#shown, 1)
  h.ok(shown[1].msg:find('changed since the latest snapshot:  notes.txt', 1, true), shown[1].msg)
  h.eq(#h.selects, 0, 'nothing to confirm')
  h.eq(h.read(fx.workspace .. '/notes.txt'), 'my own edit\n')
  h.eq(head(fx), before)
  h.ok(not h.find_line(tl, 'rewound to'), h.dump(tl))
end)

test('a rewind over a modified buffer is refused, naming the path, and changes nothing', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  local tl = h.open_timeline()
  vim.cmd('edit ' .. vim.fn.fnameescape(fx.workspace .. '/notes.txt'))
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'typed but not saved' })
  h.ok(vim.bo.modified)
  local before = head(fx)
  local result
  require('exo').rewind({}, function(err)
    result = { err = err }
  end)
  h.wait_for('the rewind to answer', function()
    return result
  end)
  h.eq(result.err, 'refused')
  h.eq(require('exo.travel').last_refusal.unsaved, { 'notes.txt' })
  h.eq(require('exo.travel').last_refusal.unsnapshotted, {})
  local shown = h.notified('rewind refused')
  h.ok(shown[1] and shown[1].msg:find('unsaved in this editor:             notes.txt', 1, true), vim.inspect(shown))
  h.eq(h.read(fx.workspace .. '/notes.txt'), 'second\n')
  h.eq(vim.api.nvim_buf_get_lines(0, 0, -1, false), { 'typed but not saved' })
  h.eq(head(fx), before)
  h.ok(not h.find_line(tl, 'rewound to'), h.dump(tl))
end)

test('a rewind reloads the unmodified buffer of a file it writes', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  h.open_timeline()
  vim.cmd('edit ' .. vim.fn.fnameescape(fx.workspace .. '/notes.txt'))
  local buf = vim.api.nvim_get_current_buf()
  h.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'second' })
  confirm('Rewind')
  local result
  require('exo').rewind({}, function(err, res)
    result = { err = err, res = res }
  end)
  h.wait_for('the rewind', function()
    return result
  end)
  h.eq(result.err, nil)
  h.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'first' })
end)

test(':Exo redo goes back to the branch the rewind left', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  local tl = h.open_timeline()
  confirm('Rewind')
  vim.cmd('Exo rewind')
  h.wait_for('the rewind', function()
    return h.read(fx.workspace .. '/notes.txt') == 'first\n' and not h.find_line(tl, 'user: two')
  end, function()
    return h.dump(tl)
  end)
  confirm('Redo')
  vim.cmd('Exo redo')
  h.wait_for('notes.txt to come back', function()
    return h.read(fx.workspace .. '/notes.txt') == 'second\n'
  end, function()
    return h.dump(tl)
  end)
  h.ok(h.selects[2].opts.prompt:find('modified  notes.txt', 1, true), h.selects[2].opts.prompt)
  -- The timeline holds the second turn again, then the redo's marker.
  h.wait_line(tl, 'user: two')
  h.wait_for('two rewinds in the timeline', function()
    local n = 0
    for _, line in ipairs(h.lines(tl)) do
      if line:find('^rewound to') then
        n = n + 1
      end
    end
    -- The history is: turn one, turn two, the redo (the first rewind is
    -- on the branch left behind).
    return n == 1 and h.find_line(tl, 'user: one')
  end, function()
    return h.dump(tl)
  end)
  -- Nothing left to redo.
  local result
  require('exo').redo({}, function(err)
    result = { err = err }
  end)
  h.wait_for('redo to answer', function()
    return result
  end)
  h.eq(result.err, 'nothing to redo')
end)

test(':Exo fork into a new folder writes the fork point\'s files there and opens the fork', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  local tl = h.open_timeline()
  -- Fork at the end of the first turn, from the timeline's cursor.
  local line = h.find_line(tl, 'turn ended: completed')
  local win = vim.fn.win_findbuf(tl.buf)[1]
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_win_set_cursor(win, { line, 0 })
  confirm('Fork')
  local folder = fx.dir .. '/forked'
  vim.cmd('Exo fork ' .. vim.fn.fnameescape(folder))
  h.wait_for('the fork\'s files', function()
    return h.read(folder .. '/notes.txt') == 'first\n'
  end, function()
    return h.dump(tl)
  end)
  -- The question named the folder and the file that will differ from the workspace.
  local prompt = h.selects[1].opts.prompt
  h.ok(prompt:find(folder, 1, true), prompt)
  h.ok(prompt:find('differs from ' .. fx.workspace .. ' in:\n  modified  notes.txt', 1, true), prompt)
  -- The workspace is untouched; the fork is current and its timeline open.
  h.eq(h.read(fx.workspace .. '/notes.txt'), 'second\n')
  local fork = h.exo_json(fx, { 'conversation', 'show', 'coder', 'work-fork' })
  h.eq(fork.workspace, folder)
  h.wait_for('the fork to be current', function()
    local current = require('exo').current
    return current and current.slug == 'work-fork'
  end)
  local fork_tl = require('exo.timeline').for_conversation(fork.id)
  h.ok(fork_tl, 'the fork\'s timeline is open')
  h.eq(vim.api.nvim_buf_get_name(fork_tl.buf), 'exo://coder/work-fork')
  h.wait_line(fork_tl, 'forked from')
  h.wait_line(fork_tl, 'snapshot fork')
  h.ok(not h.find_line(fork_tl, 'user: two'), h.dump(fork_tl))
end)

test(':Exo fork at the head says the folder gets the same files; before any snapshot it is refused', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  h.open_timeline()
  confirm('Fork')
  local folder = fx.dir .. '/at-head'
  vim.cmd('Exo fork ' .. vim.fn.fnameescape(folder))
  h.wait_for('the fork\'s files', function()
    return h.read(folder .. '/notes.txt') == 'second\n'
  end)
  local prompt = h.selects[1].opts.prompt
  h.ok(prompt:find('The new folder will hold the same files as ' .. fx.workspace .. '.', 1, true), prompt)
  -- The first event comes before any snapshot: no files to fork, so no
  -- question, no fork and no folder.
  local first = h.events(fx, 'work')[1]
  local before = #h.selects
  local err = h.await('the refused fork', function(done)
    require('exo').fork({ at = first.id, dir = fx.dir .. '/too-early' }, done)
  end)
  h.ok(err and err:find('no snapshot is in effect at that point', 1, true), tostring(err))
  h.ok(#h.notified('refused: no snapshot is in effect') == 1, 'the refusal is said')
  h.eq(#h.selects, before)
  h.eq(vim.uv.fs_stat(fx.dir .. '/too-early'), nil)
  h.eq(#h.exo_json(fx, { 'conversation', 'list', 'coder' }).conversations, 2, 'work and the fork at the head')
end)

test(':Exo fork at the head forks the head its question was about, whatever happened meanwhile', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  h.open_timeline()
  local pending
  vim.ui.select = function(items, opts, on_choice)
    table.insert(h.selects, { items = items, opts = opts })
    pending = function()
      on_choice(h.pick(items, opts, 'Fork'))
    end
  end
  local folder = fx.dir .. '/pinned'
  vim.cmd('Exo fork ' .. vim.fn.fnameescape(folder))
  h.wait_for('the question', function()
    return pending
  end)
  h.ok(h.selects[1].opts.prompt:find('the same files as ' .. fx.workspace, 1, true), h.selects[1].opts.prompt)
  -- Another turn runs while the question is open.
  h.exo(fx, { 'conversation', 'send', 'coder', 'work', 'two' })
  h.eq(h.read(fx.workspace .. '/notes.txt'), 'second\n')
  pending()
  h.wait_for('the fork\'s files', function()
    return h.read(folder .. '/notes.txt') ~= nil
  end)
  h.eq(h.read(folder .. '/notes.txt'), 'first\n')
  local forked = h.events(fx, 'work-fork')
  h.ok(not vim.iter(forked):any(function(event)
    return event.kind == 'message' and event.role == 'user' and vim.inspect(event):find('two', 1, true) ~= nil
  end), 'the fork holds no turn the question did not cover')
end)

test('with a picker that may cut its prompt, the files a rewind changes are shown whole in a buffer, Enter on an answer gives it', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  require('exo').setup({ cmd = h.exo_bin, root = fx.root, timeline = { open = 'vsplit' }, long_prompts = 'auto' })
  local tl = h.open_timeline()
  vim.cmd('Exo rewind')
  local buf = h.wait_question('confirm')
  local text = h.text(buf)
  h.ok(text:find('These files will change:\n  modified  notes.txt', 1, true), text)
  h.ok(text:find('Enter on an answer gives it; q cancels.\n  [ Cancel ]\n  [ Rewind ]\n\nrewind', 1, true), text)
  h.eq(#h.selects, 0, 'no picker')
  -- Copying a line answers nothing, nor does Enter at the end of the text.
  vim.api.nvim_feedkeys(vim.keycode('jyyG<CR>'), 'x', false)
  vim.wait(100)
  h.eq(vim.api.nvim_buf_is_valid(buf), true)
  -- Closing the buffer the usual way cancels, without an error, and says
  -- so to the caller.
  local result
  vim.cmd('close')
  h.wait_for('the buffer to close', function()
    return not vim.api.nvim_buf_is_valid(buf)
  end)
  require('exo').rewind({}, function(err)
    result = err
  end)
  buf = h.wait_question('confirm')
  vim.api.nvim_feedkeys('q', 'x', false)
  h.wait_for('the cancel to reach the caller', function()
    return result == 'cancelled'
  end)
  h.eq(h.read(fx.workspace .. '/notes.txt'), 'second\n')
  h.ok(not h.find_line(tl, 'rewound to'), h.dump(tl))
  -- Enter on Rewind goes ahead.
  vim.cmd('Exo rewind')
  buf = h.wait_question('confirm')
  h.answer(buf, 'Rewind')
  h.wait_for('notes.txt to be restored', function()
    return h.read(fx.workspace .. '/notes.txt') == 'first\n'
  end, function()
    return h.dump(tl)
  end)
  h.wait_line(tl, 'rewound to')
end)

test('a modified buffer of a file the rewind would create, opened through a symlink to the workspace, refuses it', function()
  local fx = h.fixture({ script = scripts.two_writes_in_sub, turns = { 'one', 'two' } })
  h.open_timeline()
  -- sub/ goes, and the latest snapshot says so: the rewind will create it.
  vim.fn.delete(fx.workspace .. '/sub', 'rf')
  h.await('the snapshot', function(done)
    require('exo').snapshot(done)
  end)
  local link = fx.dir .. '/link'
  h.ok(vim.uv.fs_symlink(fx.workspace, link))
  -- A new file, in a folder that does not exist yet, through the link.
  vim.cmd('edit ' .. vim.fn.fnameescape(link .. '/sub/new.txt'))
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'mine, not saved' })
  local before = head(fx)
  local err = h.await('the rewind', function(done)
    require('exo').rewind({}, done)
  end)
  h.eq(err, 'refused')
  h.eq(require('exo.travel').last_refusal.unsaved, { 'sub/new.txt' })
  h.eq(h.read(fx.workspace .. '/sub/new.txt'), nil)
  h.eq(head(fx), before)
end)

test('a buffer modified while the confirmation was open refuses the rewind', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  h.open_timeline()
  vim.cmd('edit ' .. vim.fn.fnameescape(fx.workspace .. '/notes.txt'))
  local buf = vim.api.nvim_get_current_buf()
  h.on_select = function(items, opts)
    -- The user goes on typing, then answers.
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'typed while asked' })
    return h.pick(items, opts, 'Rewind')
  end
  local before = head(fx)
  local err = h.await('the rewind', function(done)
    require('exo').rewind({}, done)
  end)
  h.eq(err, 'refused')
  h.eq(require('exo.travel').last_refusal.unsaved, { 'notes.txt' })
  h.eq(h.read(fx.workspace .. '/notes.txt'), 'second\n')
  h.eq(vim.api.nvim_buf_get_lines(buf, 0, -1, false), { 'typed while asked' })
  h.eq(head(fx), before)
end)

test(':Exo rewind takes the end of an id only when it names one event', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  local tl = h.open_timeline()
  local before = head(fx)
  vim.cmd('Exo rewind 1')
  h.wait_for('the refusal', function()
    return h.notified('"1" is not an event id')[1]
  end, function()
    return h.dump(tl)
  end)
  h.eq(#h.selects, 0)
  h.eq(head(fx), before)
  -- The end of the first turn's last event, as the timeline shows it.
  local events = h.events(fx)
  local target
  for _, event in ipairs(events) do
    if event.kind == 'turn_ended' then
      target = event
      break
    end
  end
  confirm('Rewind')
  vim.cmd('Exo rewind ' .. require('exo.render').short(target.id))
  h.wait_for('notes.txt to be restored', function()
    return h.read(fx.workspace .. '/notes.txt') == 'first\n'
  end, function()
    return h.dump(tl)
  end)
  local after = h.events(fx)
  h.eq(after[#after - 1].kind, 'rewound')
  h.eq(after[#after - 1].to_event, target.id)
end)

test('a preview shows a file name with a newline escaped', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one', 'two' } })
  h.open_timeline()
  h.write(fx.workspace .. '/odd\nmodified  fake.txt', 'x\n')
  h.await('the snapshot', function(done)
    require('exo').snapshot(done)
  end)
  h.on_select = function()
    return nil
  end
  h.await('the rewind preview', function(done)
    require('exo').rewind({}, done)
    -- Cancelled at the confirmation: the callback never runs.
    vim.defer_fn(function()
      done()
    end, 200)
    h.wait_for('the confirmation', function()
      return #h.selects > 0
    end)
  end)
  local prompt = h.selects[1].opts.prompt
  h.ok(prompt:find('deleted   odd\\nmodified  fake.txt', 1, true), prompt)
  h.ok(not prompt:find('\nmodified  fake.txt', 1, true), prompt)
  h.eq(h.read(fx.workspace .. '/odd\nmodified  fake.txt'), 'x\n')
end)

test(':Exo fork takes the folder as typed (but for ~ and variables), and :Exo send the text as typed', function()
  local fx = h.fixture({ script = scripts.two_writes, turns = { 'one' } })
  local tl = h.open_timeline()
  confirm('Fork')
  vim.env.EXO_TEST_LEAF = 'leaf'
  h.on_cleanup(function()
    vim.env.EXO_TEST_LEAF = nil
  end)
  local folder = fx.dir .. '/my %fork #1 leaf'
  -- A variable is expanded; % and # are the folder's; blanks around are not.
  vim.cmd('Exo fork ' .. fx.dir .. '/my %fork #1 $EXO_TEST_LEAF  ')
  h.wait_for('the fork\'s files', function()
    return h.read(folder .. '/notes.txt') == 'first\n'
  end, function()
    return h.dump(tl)
  end)
  h.eq(h.exo_json(fx, { 'conversation', 'show', 'coder', 'work-fork' }).workspace, folder)
  local fork_id = h.exo_json(fx, { 'conversation', 'show', 'coder', 'work-fork' }).id
  h.wait_for('the fork to be current', function()
    local current = require('exo').current
    return current and current.slug == 'work-fork'
  end)
  local fork_tl = h.wait_for('the fork\'s timeline', function()
    local opened = require('exo.timeline').for_conversation(fork_id)
    return opened and opened.loaded and opened
  end)
  vim.cmd([[Exo send two  spaces, a \ and	a tab]])
  local sent
  h.wait_for('the turn to end', function()
    local ended = 0
    for _, event in ipairs(h.events(fx, 'work-fork')) do
      if event.kind == 'message' and event.role == 'user' then
        sent = event.content
      elseif event.kind == 'turn_ended' then
        ended = ended + 1
      end
    end
    return ended == 2
  end, function()
    return h.dump(fork_tl)
  end)
  local text = type(sent) == 'string' and sent or sent[1].text
  h.eq(text, 'two  spaces, a \\ and\ta tab')
end)
