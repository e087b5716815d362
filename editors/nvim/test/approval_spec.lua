-- Approvals: :Exo send to an agent whose policy is `ask`; the question
-- comes through vim.ui.select and the answer goes back to exo.

local h = require('helpers')
local scripts = require('scripts')

test(':Exo send asks the approval through vim.ui.select, and an allowed write happens', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  h.on_select = function(items, opts)
    h.eq(opts.kind, 'exo.approval')
    return h.pick(items, opts, 'Allow')
  end
  vim.cmd('Exo send please write approved.txt')
  h.wait_for('approved.txt to be written', function()
    return h.read(fx.workspace .. '/approved.txt') == 'yes\n'
  end, function()
    return h.dump(tl)
  end)
  h.wait_line(tl, 'turn ended: completed')
  h.eq(#h.selects, 1, 'asked once, though the question came to the runner and to the watch')
  h.ok(h.selects[1].opts.prompt:find('write_file approved.txt', 1, true), h.selects[1].opts.prompt)
  h.ok(h.find_line(tl, 'approval write_file call_1_1: allowed (allow_once, by user)'), h.dump(tl))
  h.ok(h.find_line(tl, 'assistant: Wrote approved.txt.'), h.dump(tl))
  -- The question left the tail once answered.
  h.ok(not h.find_line(tl, 'waiting for approval'), h.dump(tl))
end)

test('a denied write does not happen', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  h.on_select = function(items, opts)
    return h.pick(items, opts, 'Deny')
  end
  vim.cmd('Exo send please write approved.txt')
  h.wait_line(tl, 'turn ended: completed')
  h.ok(h.find_line(tl, 'approval write_file call_1_1: denied (deny, by user)'), h.dump(tl))
  h.eq(h.read(fx.workspace .. '/approved.txt'), nil)
end)

test('a dismissed question waits, and :Exo approvals asks it again', function()
  local fx = h.fixture({ approval = 'ask', script = scripts.ask_to_write })
  local tl = h.open_timeline()
  h.on_select = function()
    return nil
  end
  vim.cmd('Exo send please write approved.txt')
  h.wait_line(tl, 'waiting for approval: write_file approved.txt')
  h.wait_for('the dismissal to be noted', function()
    return #h.notified('still waits') > 0
  end)
  h.on_select = function(items, opts)
    return h.pick(items, opts, 'Allow')
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
