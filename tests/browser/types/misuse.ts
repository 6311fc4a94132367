// Each line below must be refused by the types (the test counts the errors): they are not what
// the loader accepts or gives.
/// <reference path="../../../web/messenger/v1/confidant.d.ts" />

Confidant.on('opened', () => undefined); // error 1: no such event
Confidant.on('unread', (count: string) => count); // error 2: unread is a number
Confidant.init({ siteId: 10000 }); // error 3: messengerId is required
Confidant.init({ siteId: 10000, messengerId: 'x', getToken: () => 42 }); // error 4: getToken answers a string
const n: number = Confidant.init({ siteId: 1, messengerId: 'x' }); // error 5: init answers a Promise<boolean>
Confidant.on('message', (m) => m.text); // error 6: a message has body, not text
Confidant.version = '2'; // error 7: read-only
export {};
