-- The chat room's collections, all on stream 'chat'.
CREATE EXTENSION IF NOT EXISTS durable_state;
SELECT state.create_collection('chat_users', 'user', stream => 'chat', mode => 'lenient',
       schema => '{"type": "object", "required": ["id", "name"],
                   "properties": {"id": {"type": "string"}, "name": {"type": "string", "minLength": 1},
                                  "joined_at": {"type": "string", "format": "date-time"}}}')
 WHERE NOT EXISTS (SELECT 1 FROM state.collections WHERE name = 'chat_users');
SELECT state.create_collection('chat_messages', 'message', stream => 'chat',
       schema => '{"type": "object", "required": ["id", "user", "text"],
                   "properties": {"id": {"type": "string"}, "user": {"type": "string"},
                                  "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                                  "at": {"type": "string", "format": "date-time"}}}')
 WHERE NOT EXISTS (SELECT 1 FROM state.collections WHERE name = 'chat_messages');
-- a reaction's key is "<message id>/<user>/<emoji>": one per user and emoji
SELECT state.create_collection('chat_reactions', 'reaction', stream => 'chat', mode => 'lenient')
 WHERE NOT EXISTS (SELECT 1 FROM state.collections WHERE name = 'chat_reactions');
-- "is typing" lasts 5 seconds unless renewed
SELECT state.create_collection('chat_typing', 'typing', stream => 'chat', mode => 'lenient',
                               default_ttl => '5 seconds')
 WHERE NOT EXISTS (SELECT 1 FROM state.collections WHERE name = 'chat_typing');
